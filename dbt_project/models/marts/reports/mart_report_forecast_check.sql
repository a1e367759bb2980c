-- one row per product x week of the served model's backtest: the forecast made from the
-- latest origin before the week (the shortest horizon), its 80% interval and the units
-- sold, and whether the actual fell outside the interval (an anomaly in the reports)
with backtest as (
    select * from {{ ref('mart_forecast_backtest') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

ranked as (
    select
        backtest.*,
        row_number() over (
            partition by backtest.product_id, backtest.week_start_date
            order by backtest.origin_week desc
        ) as origin_rank
    from backtest
),

final as (
    select
        {{ surrogate_key(['ranked.product_id', 'ranked.week_start_date']) }}
            as report_forecast_check_id,
        ranked.week_start_date,
        ranked.product_id,
        coalesce(products.product_name, 'unknown') as product_name,
        coalesce(ranked.category, 'unknown') as category,
        ranked.origin_week,
        ranked.forecast_units,
        ranked.lower_80,
        ranked.upper_80,
        ranked.actual_units,
        case
            when ranked.actual_units > ranked.upper_80 then 'above'
            when ranked.actual_units < ranked.lower_80 then 'below'
            else 'inside'
        end as interval_position,
        (
            ranked.actual_units > ranked.upper_80 or ranked.actual_units < ranked.lower_80
        ) as is_outside_interval,
        ranked.model_version
    from ranked
    left join products
        on ranked.product_id = products.product_id
    where ranked.origin_rank = 1
)

select * from final
