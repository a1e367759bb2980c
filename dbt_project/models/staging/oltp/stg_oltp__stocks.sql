-- one row per product x warehouse (current state in silver)
with source as (
    select * from {{ source('silver', 'stock') }}
),

final as (
    select
        -- ids
        cast(product_id as bigint) as product_id,
        warehouse_id,
        -- measures
        cast(quantity_on_hand as integer) as quantity_on_hand,
        cast(reorder_point as integer) as reorder_point,
        -- timestamps (UTC)
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
