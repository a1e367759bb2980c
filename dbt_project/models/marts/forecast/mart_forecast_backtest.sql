-- one row per product x origin week x target week: the rolling-origin backtest of the
-- model version that made the latest forecasts (the champion when it scored)
with backtests as (
    select * from {{ ref('stg_ml__forecast_backtests') }}
),

forecasts as (
    select * from {{ ref('mart_demand_forecast') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

serving_version as (
    select distinct model_version from forecasts
),

-- a version's backtest is recorded once; should it be recorded again, the latest wins
latest_record as (
    select
        backtests.model_version,
        max(backtests.recorded_at) as recorded_at
    from backtests
    inner join serving_version
        on backtests.model_version = serving_version.model_version
    group by backtests.model_version
),

final as (
    select
        backtests.product_id,
        backtests.origin_week,
        backtests.week_start_date,
        products.category,
        cast(backtests.forecast_units as double) as forecast_units,
        cast(backtests.lower_80 as double) as lower_80,
        cast(backtests.upper_80 as double) as upper_80,
        cast(backtests.actual_units as double) as actual_units,
        backtests.model_version
    from backtests
    inner join latest_record
        on backtests.model_version = latest_record.model_version
        and backtests.recorded_at = latest_record.recorded_at
    left join products
        on backtests.product_id = products.product_id
)

select * from final
