-- one row per product x warehouse with stock on the last day of data (mart_stock_coverage):
-- the product's forecast split over its warehouses by their share of its recent sales (the
-- stock coverage window), how long the stock lasts at that rate, and how much to order now
-- so that the stock covers the upper bound of the 80% interval over the lead time and the
-- review period
{%- set lead_weeks = var('replenishment_lead_time_weeks') %}
{%- set review_weeks = var('replenishment_review_weeks') %}

with coverage as (
    select * from {{ ref('mart_stock_coverage') }}
),

forecasts as (
    select * from {{ ref('mart_demand_forecast') }}
),

shares as (
    select
        product_id,
        warehouse_id,
        units_sold_in_window,
        sum(units_sold_in_window) over (partition by product_id) as product_units_sold,
        count(*) over (partition by product_id) as product_warehouses
    from coverage
),

weeks_ahead as (
    select
        forecasts.*,
        row_number() over (
            partition by forecasts.product_id order by forecasts.week_start_date
        ) as week_ahead
    from forecasts
),

product_demand as (
    select
        product_id,
        count(*) as horizon_weeks,
        sum(forecast_units) as horizon_units,
        sum(case when week_ahead <= {{ lead_weeks }} then forecast_units else 0 end)
            as lead_time_units,
        sum(case when week_ahead <= {{ lead_weeks + review_weeks }} then upper_80 else 0 end)
            as cover_upper_units
    from weeks_ahead
    group by product_id
),

split as (
    select
        shares.product_id,
        shares.warehouse_id,
        case
            when shares.product_units_sold > 0
                then cast(shares.units_sold_in_window as double) / shares.product_units_sold
            else 1.0 / shares.product_warehouses
        end as warehouse_share
    from shares
),

demand as (
    select
        split.product_id,
        split.warehouse_id,
        split.warehouse_share,
        product_demand.lead_time_units * split.warehouse_share as lead_time_units,
        product_demand.cover_upper_units * split.warehouse_share as cover_upper_units,
        product_demand.horizon_units * split.warehouse_share
            / (7.0 * product_demand.horizon_weeks) as daily_units
    from split
    inner join product_demand
        on split.product_id = product_demand.product_id
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
