-- one row per table (or change log) per step per maintain run: what was done, why, and
-- the table's files and sizes before and after
with steps as (
    select * from {{ ref('stg_quality__table_maintenance') }}
),

runs as (
    select
        run_id,
        min(started_at) as run_started_at
    from steps
    group by run_id
),

latest as (
    select max(run_started_at) as run_started_at from runs
),

final as (
    select
        -- ids
        steps.run_id,
        -- attributes
        steps.layer,
        steps.table_name,
        steps.layer || '.' || steps.table_name as lake_table,
        steps.action,
        (steps.action <> 'none') as is_action,
        steps.reason,
        (runs.run_started_at = latest.run_started_at) as is_latest_run,
        -- the table as the run left it
        (
            row_number() over (
                partition by steps.run_id, steps.layer, steps.table_name
                order by steps.started_at desc, steps.version_after desc
            ) = 1
        ) as is_last_step,
        -- measures
        steps.files_before,
        steps.files_after,
        cast(steps.live_bytes_before as double) / 1048576 as live_mb_before,
        cast(steps.live_bytes_after as double) / 1048576 as live_mb_after,
        cast(steps.disk_bytes_before as double) / 1048576 as stored_mb_before,
        cast(steps.disk_bytes_after as double) / 1048576 as stored_mb_after,
        steps.version_before,
        steps.version_after,
        steps.step_seconds,
        -- timestamps (UTC)
        runs.run_started_at,
        steps.started_at
    from steps
    inner join runs on steps.run_id = runs.run_id
    cross join latest
)

select * from final
