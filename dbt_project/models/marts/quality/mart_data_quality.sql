-- one row per check per gate run, with the run's outcome: the history of every check
with checks as (
    select * from {{ ref('stg_quality__check_results') }}
),

runs as (
    select * from {{ ref('stg_quality__pipeline_runs') }}
),

latest as (
    select max(finished_at) as finished_at from runs
),

final as (
    select
        -- ids
        checks.run_id,
        checks.check_name,
        -- attributes
        checks.check_kind,
        checks.layer,
        checks.table_name,
        checks.severity,
        case
            when checks.passed then 'pass'
            when checks.severity = 'warn' then 'warn'
            else 'fail'
        end as check_status,
        checks.passed as is_passed,
        (not checks.passed and checks.severity = 'error') as is_blocking,
        checks.observed as observed_value,
        checks.expected as expected_value,
        checks.detail,
        runs.outcome as run_outcome,
        (runs.finished_at = latest.finished_at) as is_latest_run,
        -- timestamps (UTC)
        checks.checked_at
    from checks
    inner join runs on checks.run_id = runs.run_id
    cross join latest
)

select * from final
