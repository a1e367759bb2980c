-- one row per scoring run x product x warehouse x week ahead
with source as (
    select * from {{ source('ml', 'warehouse_forecasts') }}
),

final as (
    select
        -- ids
        scoring_run_id,
        product_id,
        warehouse_id,
        -- attributes
        week_start_date,
        warehouse_share,
        forecast_units,
        lower_80,
        upper_80,
        model_version,
        -- timestamps (UTC)
        {{ to_utc_timestamp('scored_at') }} as scored_at
    from source
)

select * from final
