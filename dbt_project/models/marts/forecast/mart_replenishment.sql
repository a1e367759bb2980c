-- one row per product x warehouse with stock on the last day of data (mart_stock_coverage):
-- the latest scoring run's forecast for that warehouse (the product's forecast split by
-- the warehouse's share of its recent in-stock demand, with intervals calibrated per
-- warehouse: ml/demand/warehouse.py), how long the stock lasts at that rate, and how much
-- to order now so that the stock covers the upper bound of the 80% interval over the lead
-- time and the review period
{%- set lead_weeks = var('replenishment_lead_time_weeks') %}
{%- set review_weeks = var('replenishment_review_weeks') %}

with coverage as (
    select * from {{ ref('mart_stock_coverage') }}
),

product_forecasts as (
    select * from {{ ref('stg_ml__demand_forecasts') }}
),

warehouse_forecasts as (
    select * from {{ ref('stg_ml__warehouse_forecasts') }}
),

latest_run as (
    -- the run mart_demand_forecast serves
    select scoring_run_id
    from product_forecasts
    order by scored_at desc, scoring_run_id desc
    limit 1
),

weeks_ahead as (
    select
        warehouse_forecasts.*,
        row_number() over (
            partition by warehouse_forecasts.product_id, warehouse_forecasts.warehouse_id
            order by warehouse_forecasts.week_start_date
        ) as week_ahead
    from warehouse_forecasts
    inner join latest_run
        on warehouse_forecasts.scoring_run_id = latest_run.scoring_run_id
),

demand as (
    select
        product_id,
        warehouse_id,
        max(warehouse_share) as warehouse_share,
        sum(case when week_ahead <= {{ lead_weeks }} then forecast_units else 0 end)
            as lead_time_units,
        sum(case when week_ahead <= {{ lead_weeks + review_weeks }} then upper_80 else 0 end)
            as cover_upper_units,
        sum(forecast_units) / (7.0 * count(*)) as daily_units
    from weeks_ahead
    group by product_id, warehouse_id
),

final as (
    select
        {{ surrogate_key(['coverage.product_id', 'coverage.warehouse_id']) }}
            as replenishment_id,
        coverage.product_id,
        coverage.warehouse_id,
        coverage.product_name,
        coverage.category,
        coverage.as_of_date,
        coverage.quantity_on_hand,
        coverage.reorder_point,
        cast(demand.warehouse_share as double) as warehouse_share,
        cast({{ lead_weeks }} as integer) as lead_time_weeks,
        cast(demand.lead_time_units as double) as forecast_units_lead_time,
        cast(demand.daily_units as double) as forecast_daily_units,
        case
            when coverage.quantity_on_hand <= 0 then cast(0 as double)
            when demand.daily_units > 0
                then cast(coverage.quantity_on_hand / demand.daily_units as double)
        end as days_until_stockout,
        cast(
            greatest(ceiling(demand.cover_upper_units - coverage.quantity_on_hand), 0)
            as bigint
        ) as suggested_order_units
    from coverage
    inner join demand
        on coverage.product_id = demand.product_id
        and coverage.warehouse_id = demand.warehouse_id
)

select * from final
