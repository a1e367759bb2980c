-- the dashboards' order lines are every non-cancelled order line, none lost to a join
with order_items as (
    select
        count(*) as line_count,
        sum(net_amount) as net_amount
    from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

sales_lines as (
    select
        count(*) as line_count,
        sum(net_amount) as net_amount
    from {{ ref('mart_sales_lines') }}
),

final as (
    select
        order_items.line_count as order_item_lines,
        sales_lines.line_count as sales_lines
    from order_items
    cross join sales_lines
    where
        order_items.line_count <> sales_lines.line_count
        or coalesce(order_items.net_amount, 0) <> coalesce(sales_lines.net_amount, 0)
)

select * from final
