-- one row per order line with the region and segment of the client and the category of
-- the product (their versions at order time): the wide table the sales dashboards read,
-- which row-level security filters by region; cancelled orders are left out, as in the
-- sales aggregates
with order_items as (
    select * from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

clients as (
    select * from {{ ref('dim_client') }}
),

products as (
    select * from {{ ref('dim_product') }}
),

dates as (
    select * from {{ ref('dim_date') }}
),

final as (
    select
        order_items.order_item_id,
        order_items.order_id,
        order_items.client_id,
        order_items.product_id,
        order_items.order_date,
        dates.week_start_date,
        dates.month_start_date,
        dates.year_number,
        dates.month_number,
        clients.region,
        clients.segment as client_segment,
        products.category,
        products.product_name,
        products.brand,
        order_items.quantity,
        order_items.gross_amount,
        order_items.discount_amount,
        order_items.net_amount
    from order_items
    inner join clients
        on order_items.client_key = clients.client_key
    inner join products
        on order_items.product_key = products.product_key
    inner join dates
        on order_items.order_date_key = dates.date_key
)

select * from final
