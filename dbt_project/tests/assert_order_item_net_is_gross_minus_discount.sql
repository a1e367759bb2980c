-- every order line: gross = quantity * unit_price and net = gross - discount, exactly
with order_items as (
    select * from {{ ref('fct_order_item') }}
),

final as (
    select * from order_items
    where
        gross_amount <> quantity * unit_price
        or net_amount <> gross_amount - discount_amount
)

select * from final
