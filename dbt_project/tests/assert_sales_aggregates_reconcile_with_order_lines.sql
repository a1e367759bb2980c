-- the weekly and monthly aggregates add up to the (non-cancelled) order lines, to the cent
with order_items as (
    select
        sum(net_amount) as net_amount,
        sum(quantity) as units_sold
    from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

weekly as (
    select
        sum(net_amount) as net_amount,
        sum(units_sold) as units_sold
    from {{ ref('agg_sales_weekly') }}
),

monthly as (
    select
        sum(net_amount) as net_amount,
        sum(units_sold) as units_sold
    from {{ ref('agg_sales_monthly') }}
),

final as (
    select
        order_items.net_amount as order_items_net_amount,
        weekly.net_amount as weekly_net_amount,
        monthly.net_amount as monthly_net_amount
    from order_items
    cross join weekly
    cross join monthly
    where
        coalesce(order_items.net_amount, 0) <> coalesce(weekly.net_amount, 0)
        or coalesce(order_items.net_amount, 0) <> coalesce(monthly.net_amount, 0)
        or coalesce(order_items.units_sold, 0) <> coalesce(weekly.units_sold, 0)
        or coalesce(order_items.units_sold, 0) <> coalesce(monthly.units_sold, 0)
)

select * from final
