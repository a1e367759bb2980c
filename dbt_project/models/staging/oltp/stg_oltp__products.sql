-- one row per product (current state in silver)
with source as (
    select * from {{ source('silver', 'product') }}
),

final as (
    select
        -- ids
        cast(product_id as bigint) as product_id,
        sku,
        -- attributes
        name as product_name,
        description as product_description,
        category,
        brand,
        cast(price as decimal(38, 2)) as price,
        is_active,
        -- timestamps (UTC)
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
