-- one row per change event of a product (bronze change log; snapshot reads, inserts,
-- updates and deletes; a delete carries the row as it was before the delete)
with source as (
    select * from {{ source('bronze', 'product') }}
),

final as (
    select
        -- ids
        cast(product_id as bigint) as product_id,
        sku,
        -- change event
        {{ change_event_columns() }}
        -- row image
        name as product_name,
        description as product_description,
        category,
        brand,
        cast(price as decimal(38, 2)) as price,
        is_active,
        -- timestamps (UTC)
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at
    from source
)

select * from final
