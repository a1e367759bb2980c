-- one row per scoring run x client x rank
with source as (
    select * from {{ source('ml', 'client_recommendations') }}
),

final as (
    select
        -- ids
        scoring_run_id,
        client_id,
        product_id,
        -- attributes
        cast(rank as integer) as rank,
        score,
        reason,
        model_name,
        model_version,
        -- timestamps (UTC)
        {{ to_utc_timestamp('features_as_of') }} as features_as_of,
        {{ to_utc_timestamp('scored_at') }} as scored_at
    from source
)

select * from final
