-- one row per product of the catalogue (its current version): what it sold, what it
-- cost at the cheapest supplier's latest price list, and the gross margin
with products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

order_items as (
    select * from {{ ref('fct_order_item') }}
),

supplier_prices as (
    select * from {{ ref('stg_sources__supplier_prices') }}
),

sold as (
    select
        product_id,
        sum(quantity) as units_sold,
        sum(net_amount) as revenue
    from order_items
    group by product_id
),

costs as (
    select
        product_id,
        min(unit_cost) as unit_cost,
        count(*) as suppliers
    from supplier_prices
    group by product_id
),

final as (
    select
        -- keys
        products.product_id,
        -- attributes
        products.product_name,
        products.category,
        coalesce(costs.suppliers, 0) as suppliers,
        costs.unit_cost is not null as has_cost,
        -- measures
        cast(coalesce(sold.units_sold, 0) as bigint) as units_sold,
        cast(coalesce(sold.revenue, 0) as decimal(14, 2)) as revenue,
        cast(costs.unit_cost as decimal(14, 2)) as unit_cost,
        cast(coalesce(sold.units_sold, 0) * costs.unit_cost as decimal(14, 2)) as cost_of_goods,
        cast(
            coalesce(sold.revenue, 0) - coalesce(sold.units_sold, 0) * costs.unit_cost
            as decimal(14, 2)
        ) as gross_margin
    from products
    left join sold on products.product_id = sold.product_id
    left join costs on products.product_id = costs.product_id
)

select * from final
