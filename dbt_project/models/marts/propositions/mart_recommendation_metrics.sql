-- one row per cutoff x recommender x segment: the backtest metrics of the propositions
-- version that made the latest propositions, and of every baseline it was measured against
with metrics as (
    select * from {{ ref('stg_ml__recommendation_metrics') }}
),

recommendations as (
    select * from {{ ref('stg_ml__client_recommendations') }}
),

-- the version of the run mart_client_recommendations serves (read from staging, so that a
-- defect in the propositions does not keep this mart from being built and audited)
serving_version as (
    select model_version
    from recommendations
    order by scored_at desc, scoring_run_id desc
    limit 1
),

-- a version's metrics are recorded once; should they be recorded again, the latest win
latest_record as (
    select
        metrics.model_version,
        max(metrics.recorded_at) as recorded_at
    from metrics
    inner join serving_version
        on metrics.model_version = serving_version.model_version
    group by metrics.model_version
),

final as (
    select
        metrics.cutoff_date,
        metrics.recommender,
        metrics.segment,
        metrics.is_baseline,
        metrics.horizon_days,
        metrics.clients,
        cast(metrics.map_at_10 as double) as map_at_10,
        cast(metrics.ndcg_at_10 as double) as ndcg_at_10,
        cast(metrics.recall_at_10 as double) as recall_at_10,
        cast(metrics.catalogue_coverage as double) as catalogue_coverage,
        metrics.model_version
    from metrics
    inner join latest_record
        on metrics.model_version = latest_record.model_version
        and metrics.recorded_at = latest_record.recorded_at
)

select * from final
