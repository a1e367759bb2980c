-- one row per model version x product x origin week x target week
with source as (
    select * from {{ source('ml', 'forecast_backtests') }}
),

final as (
    select
        -- ids
        model_version,
        product_id,
        -- attributes
        origin_week,
        week_start_date,
        forecast_units,
        lower_80,
        upper_80,
        actual_units,
        -- timestamps (UTC)
        {{ to_utc_timestamp('recorded_at') }} as recorded_at
    from source
)

select * from final
