-- one row per order line (current state in silver; lines of cancelled orders are deleted)
with source as (
    select * from {{ source('silver', 'order_item') }}
),

final as (
    select
        -- ids
        cast(order_item_id as bigint) as order_item_id,
        cast(order_id as bigint) as order_id,
        cast(product_id as bigint) as product_id,
        cast(promotion_id as bigint) as promotion_id,
        -- measures
        cast(quantity as bigint) as quantity,
        cast(unit_price as decimal(38, 2)) as unit_price,
        cast(discount_pct as decimal(38, 2)) as discount_pct,
        cast(discount_amount as decimal(38, 2)) as discount_amount,
        -- timestamps (UTC)
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
