-- one row per transporter (current state in silver)
with source as (
    select * from {{ source('silver', 'transporter') }}
),

final as (
    select
        -- ids
        cast(transporter_id as bigint) as transporter_id,
        -- attributes
        name as transporter_name,
        service_level,
        cast(cost_per_order as decimal(38, 2)) as cost_per_order,
        -- timestamps (UTC)
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
