-- one row per scoring run x feature
with source as (
    select * from {{ source('ml', 'model_monitoring') }}
),

final as (
    select
        -- ids
        scoring_run_id,
        model_name,
        model_version,
        -- attributes
        feature,
        psi,
        status,
        reference_start,
        reference_end,
        current_start,
        current_end,
        -- timestamps (UTC)
        {{ to_utc_timestamp('scored_at') }} as scored_at
    from source
)

select * from final
