-- one row per table (or change log) per step per maintain run
with source as (
    select * from {{ source('quality', 'table_maintenance') }}
),

final as (
    select
        -- ids
        run_id,
        -- attributes
        layer,
        table_name,
        action,
        reason,
        files_before,
        files_after,
        live_bytes_before,
        live_bytes_after,
        disk_bytes_before,
        disk_bytes_after,
        version_before,
        version_after,
        seconds as step_seconds,
        -- timestamps (UTC)
        {{ to_utc_timestamp('started_at') }} as started_at
    from source
)

select * from final
