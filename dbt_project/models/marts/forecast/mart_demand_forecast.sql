-- one row per product x week ahead: the forecasts of the latest scoring run
with forecasts as (
    select * from {{ ref('stg_ml__demand_forecasts') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

latest_run as (
    select scoring_run_id
    from forecasts
    order by scored_at desc, scoring_run_id desc
    limit 1
),

final as (
    select
        forecasts.product_id,
        forecasts.week_start_date,
        products.product_name,
        products.category,
        cast(forecasts.forecast_units as double) as forecast_units,
        cast(forecasts.lower_80 as double) as lower_80,
        cast(forecasts.upper_80 as double) as upper_80,
        forecasts.model_name,
        forecasts.model_version,
        forecasts.features_as_of,
        forecasts.scored_at
    from forecasts
    inner join latest_run
        on forecasts.scoring_run_id = latest_run.scoring_run_id
    left join products
        on forecasts.product_id = products.product_id
)

select * from final
