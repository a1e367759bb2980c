-- one row per gate run: its outcome, its checks by kind, freshness and durations
with runs as (
    select * from {{ ref('stg_quality__pipeline_runs') }}
),

checks as (
    select * from {{ ref('stg_quality__check_results') }}
),

by_run as (
    select
        run_id,
        sum(case when check_kind in ('dbt_test', 'dbt_model') and not passed then 1 else 0 end)
            as dbt_failed,
        sum(case when check_kind = 'expectation' and not passed then 1 else 0 end)
            as expectations_failed,
        sum(case when check_kind = 'reconciliation' and not passed then 1 else 0 end)
            as reconciliation_failed,
        sum(case when check_kind = 'freshness' and not passed then 1 else 0 end)
            as freshness_failed
    from checks
    group by run_id
),

latest as (
    select max(finished_at) as finished_at from runs
),

final as (
    select
        -- ids
        runs.run_id,
        runs.served_run_id,
        -- attributes
        runs.profile,
        runs.outcome,
        (runs.outcome <> 'blocked') as is_published,
        (runs.finished_at = latest.finished_at) as is_latest_run,
        runs.checks_run,
        runs.checks_failed,
        runs.checks_warned,
        coalesce(by_run.dbt_failed, 0) as dbt_failed,
        coalesce(by_run.expectations_failed, 0) as expectations_failed,
        coalesce(by_run.reconciliation_failed, 0) as reconciliation_failed,
        coalesce(by_run.freshness_failed, 0) as freshness_failed,
        runs.freshness_seconds,
        runs.dead_letters,
        runs.build_seconds,
        runs.audit_seconds,
        -- timestamps (UTC)
        runs.started_at,
        runs.finished_at,
        runs.newest_source_commit_at,
        runs.published_at
    from runs
    cross join latest
    left join by_run on runs.run_id = by_run.run_id
)

select * from final
