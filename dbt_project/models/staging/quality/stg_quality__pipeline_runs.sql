-- one row per gate run
with source as (
    select * from {{ source('quality', 'pipeline_runs') }}
),

final as (
    select
        -- ids
        run_id,
        served_run_id,
        -- attributes
        profile,
        outcome,
        checks as checks_run,
        errors as checks_failed,
        warnings as checks_warned,
        freshness_seconds,
        dead_letters,
        build_seconds,
        audit_seconds,
        -- timestamps (UTC)
        {{ to_utc_timestamp('started_at') }} as started_at,
        {{ to_utc_timestamp('finished_at') }} as finished_at,
        {{ to_utc_timestamp('newest_source_commit') }} as newest_source_commit_at,
        {{ to_utc_timestamp('published_at') }} as published_at
    from source
)

select * from final
