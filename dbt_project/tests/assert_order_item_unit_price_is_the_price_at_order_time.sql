-- An order line's unit price is the price of the product version valid when the order
-- was placed (its product_key). Judged, like the catalogue range, only once the
-- product's history has started.
with order_items as (
    select * from {{ ref('fct_order_item') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where not is_unknown_member
),

histories as (
    select
        product_id,
        min(valid_from) as history_starts_at
    from products
    group by product_id
),

final as (
    select
        order_items.order_item_id,
        order_items.product_id,
        order_items.ordered_at,
        order_items.unit_price,
        products.version_number,
        products.price as catalogue_price
    from order_items
    inner join products
        on order_items.product_key = products.product_key
    inner join histories
        on order_items.product_id = histories.product_id
    where
        order_items.ordered_at >= histories.history_starts_at
        and order_items.unit_price <> products.price
)

select * from final
