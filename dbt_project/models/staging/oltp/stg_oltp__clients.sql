-- one row per client (current state in silver)
with source as (
    select * from {{ source('silver', 'client') }}
),

final as (
    select
        -- ids
        cast(client_id as bigint) as client_id,
        -- attributes (PII columns arrive masked from the lake)
        first_name,
        last_name,
        email,
        phone,
        city,
        region,
        segment,
        -- timestamps (UTC)
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
