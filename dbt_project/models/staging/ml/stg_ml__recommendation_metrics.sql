-- one row per model version x cutoff x recommender x segment
with source as (
    select * from {{ source('ml', 'recommendation_metrics') }}
),

final as (
    select
        -- ids
        model_version,
        -- attributes
        cutoff_date,
        cast(horizon_days as integer) as horizon_days,
        recommender,
        is_baseline,
        segment,
        clients,
        map_at_10,
        ndcg_at_10,
        recall_at_10,
        catalogue_coverage,
        -- timestamps (UTC)
        {{ to_utc_timestamp('recorded_at') }} as recorded_at
    from source
)

select * from final
