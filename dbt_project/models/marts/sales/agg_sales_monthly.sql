-- one row per calendar month x product category: what was ordered, by order date;
-- cancelled orders are left out (their lines are deleted in the source)
with order_items as (
    select * from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

products as (
    select * from {{ ref('dim_product') }}
),

lines as (
    select
        cast({{ dbt.date_trunc('month', 'order_items.order_date') }} as date) as month_start_date,
        products.category,
        order_items.order_id,
        order_items.quantity,
        order_items.gross_amount,
        order_items.discount_amount,
        order_items.net_amount
    from order_items
    inner join products
        on order_items.product_key = products.product_key
),

aggregated as (
    select
        month_start_date,
        category,
        count(distinct order_id) as order_count,
        count(*) as order_line_count,
        sum(quantity) as units_sold,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        sum(net_amount) as net_amount
    from lines
    group by month_start_date, category
),

final as (
    select
        {{ surrogate_key(['month_start_date', 'category']) }} as sales_month_category_id,
        month_start_date,
        cast(extract(year from month_start_date) as integer) as year_number,
        cast(extract(month from month_start_date) as integer) as month_number,
        category,
        cast(order_count as bigint) as order_count,
        cast(order_line_count as bigint) as order_line_count,
        cast(units_sold as bigint) as units_sold,
        cast(gross_amount as decimal(18, 2)) as gross_amount,
        cast(discount_amount as decimal(18, 2)) as discount_amount,
        cast(net_amount as decimal(18, 2)) as net_amount
    from aggregated
)

select * from final
