-- one row per change event of a product x warehouse stock level (bronze change log;
-- a delete carries the row as it was before the delete)
with source as (
    select * from {{ source('bronze', 'stock') }}
),

final as (
    select
        -- ids
        cast(product_id as bigint) as product_id,
        warehouse_id,
        -- change event
        {{ change_event_columns() }}
        -- row image
        cast(quantity_on_hand as bigint) as quantity_on_hand,
        cast(reorder_point as bigint) as reorder_point,
        -- timestamps (UTC)
        {{ to_utc_timestamp('updated_at') }} as updated_at
    from source
)

select * from final
