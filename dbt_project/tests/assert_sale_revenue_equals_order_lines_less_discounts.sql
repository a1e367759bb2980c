-- A sale's revenue is its order's lines less their discounts, to the cent:
-- gross_amount = sum(quantity * unit_price), discount_amount = sum(line discounts) and
-- net_amount = gross_amount - discount_amount; and a sale is not made before its order
-- was placed (the lines' ordered_at). A sale whose order has no line fails.
with sales as (
    select * from {{ ref('fct_sale') }}
),

order_items as (
    select * from {{ ref('fct_order_item') }}
),

order_totals as (
    select
        order_id,
        sum(quantity * unit_price) as gross_amount,
        sum(discount_amount) as discount_amount,
        min(ordered_at) as ordered_at
    from order_items
    group by order_id
),

final as (
    select
        sales.sale_id,
        sales.order_id,
        sales.gross_amount,
        sales.discount_amount,
        sales.net_amount,
        sales.sold_at,
        order_totals.ordered_at,
        order_totals.gross_amount as lines_gross_amount,
        order_totals.discount_amount as lines_discount_amount
    from sales
    left join order_totals
        on sales.order_id = order_totals.order_id
    where
        order_totals.order_id is null
        or sales.gross_amount <> order_totals.gross_amount
        or sales.discount_amount <> order_totals.discount_amount
        or sales.net_amount <> order_totals.gross_amount - order_totals.discount_amount
        or sales.sold_at < order_totals.ordered_at
)

select * from final
