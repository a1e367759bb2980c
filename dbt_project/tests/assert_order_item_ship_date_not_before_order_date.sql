-- An order is not shipped before the day it was placed: ship_date >= order_date on every
-- line. Lines of orders not shipped yet (ship_date null) are not judged.
with order_items as (
    select * from {{ ref('fct_order_item') }}
),

final as (
    select
        order_item_id,
        order_id,
        order_date,
        ship_date
    from order_items
    where ship_date < order_date
)

select * from final
