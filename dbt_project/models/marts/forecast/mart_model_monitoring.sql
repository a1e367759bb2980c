-- one row per scoring run x feature: the drift of each model input (and of the target)
-- between the weeks the serving model was trained on and the latest weeks
with monitoring as (
    select * from {{ ref('stg_ml__model_monitoring') }}
),

latest_run as (
    select max(scored_at) as scored_at from monitoring
),

final as (
    select
        {{ surrogate_key(['monitoring.scoring_run_id', 'monitoring.feature']) }}
            as model_monitoring_id,
        monitoring.scoring_run_id,
        monitoring.model_name,
        monitoring.model_version,
        monitoring.feature,
        cast(monitoring.psi as double) as psi,
        monitoring.status,
        monitoring.reference_start,
        monitoring.reference_end,
        monitoring.current_start,
        monitoring.current_end,
        monitoring.scored_at,
        monitoring.scored_at = latest_run.scored_at as is_latest_run
    from monitoring
    cross join latest_run
)

select * from final
