-- one row per scoring run x product x week ahead
with source as (
    select * from {{ source('ml', 'demand_forecasts') }}
),

final as (
    select
        -- ids
        scoring_run_id,
        product_id,
        -- attributes
        week_start_date,
        forecast_units,
        lower_80,
        upper_80,
        model_name,
        model_version,
        -- timestamps (UTC)
        {{ to_utc_timestamp('features_as_of') }} as features_as_of,
        {{ to_utc_timestamp('scored_at') }} as scored_at
    from source
)

select * from final
