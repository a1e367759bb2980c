-- the served model's backtest covers at least the last eight origins, each with the full
-- eight-week horizon (checked once a model has scored)
with backtest as (
    select * from {{ ref('mart_forecast_backtest') }}
),

origins as (
    select
        origin_week,
        count(distinct week_start_date) as target_weeks
    from backtest
    group by origin_week
),

final as (
    select
        count(*) as origins,
        min(target_weeks) as fewest_target_weeks
    from origins
    having count(*) > 0 and (count(*) < 8 or min(target_weeks) < 8)
)

select * from final
