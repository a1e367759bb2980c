-- An order line's unit price lies within its product's catalogue range: between the
-- lowest and the highest price of all the product's versions in dim_product. Only lines
-- ordered once the product's history has started (at or after its first version's
-- valid_from) are judged: an earlier line may carry a price from before change capture,
-- which the history cannot know. Lines of a product without history are left to the
-- not_unknown_member test on product_key.
with order_items as (
    select * from {{ ref('fct_order_item') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where not is_unknown_member
),

catalogue_ranges as (
    select
        product_id,
        min(price) as lowest_price,
        max(price) as highest_price,
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
        catalogue_ranges.lowest_price,
        catalogue_ranges.highest_price
    from order_items
    inner join catalogue_ranges
        on order_items.product_id = catalogue_ranges.product_id
    where
        order_items.ordered_at >= catalogue_ranges.history_starts_at
        and (
            order_items.unit_price < catalogue_ranges.lowest_price
            or order_items.unit_price > catalogue_ranges.highest_price
        )
)

select * from final
