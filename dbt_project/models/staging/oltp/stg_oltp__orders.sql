-- one row per order (current state in silver)
with source as (
    select * from {{ source('silver', 'orders') }}
),

final as (
    select
        -- ids
        cast(order_id as bigint) as order_id,
        cast(client_id as bigint) as client_id,
        cast(transporter_id as bigint) as transporter_id,
        -- attributes
        status as order_status,
        -- timestamps (UTC)
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(shipped_at as {{ dbt.type_timestamp() }}) as shipped_at,
        cast(delivered_at as {{ dbt.type_timestamp() }}) as delivered_at,
        cast(cancelled_at as {{ dbt.type_timestamp() }}) as cancelled_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
