-- one row per check per gate run
with source as (
    select * from {{ source('quality', 'check_results') }}
),

final as (
    select
        -- ids
        run_id,
        check_name,
        -- attributes
        kind as check_kind,
        layer,
        table_name,
        severity,
        passed,
        observed,
        expected,
        detail,
        -- timestamps (UTC)
        {{ to_utc_timestamp('checked_at') }} as checked_at
    from source
)

select * from final
