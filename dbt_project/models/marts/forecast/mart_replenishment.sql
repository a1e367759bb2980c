-- one row per product x warehouse with stock on the last day of data: the product's
-- forecast split over its warehouses by their share of its recent issues, how long the
-- stock lasts at that rate, and how much to order now so that the stock covers the upper
-- bound of the 80% interval over the lead time and the review period
{%- set lead_weeks = var('replenishment_lead_time_weeks') %}
{%- set review_weeks = var('replenishment_review_weeks') %}
{%- set share_days = var('replenishment_share_window_days') %}

with snapshots as (
    select * from {{ ref('fct_inventory_snapshot') }}
),

forecasts as (
    select * from {{ ref('mart_demand_forecast') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

last_day as (
    select max(snapshot_date) as last_date from snapshots
),

current_stock as (
    select snapshots.*
    from snapshots
    inner join last_day
        on snapshots.snapshot_date = last_day.last_date
),

recent_issues as (
    select
        snapshots.product_id,
        snapshots.warehouse_id,
        sum(snapshots.units_issued) as units_issued
    from snapshots
    inner join last_day
        on snapshots.snapshot_date > {{ dbt.dateadd('day', -share_days, 'last_day.last_date') }}
    group by snapshots.product_id, snapshots.warehouse_id
),

shares as (
    select
        current_stock.product_id,
        current_stock.warehouse_id,
        coalesce(recent_issues.units_issued, 0) as units_issued,
        sum(coalesce(recent_issues.units_issued, 0))
            over (partition by current_stock.product_id) as product_units_issued,
        count(*) over (partition by current_stock.product_id) as product_warehouses
    from current_stock
    left join recent_issues
        on current_stock.product_id = recent_issues.product_id
        and current_stock.warehouse_id = recent_issues.warehouse_id
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
            when shares.product_units_issued > 0
                then cast(shares.units_issued as double) / shares.product_units_issued
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
        {{ surrogate_key(['current_stock.product_id', 'current_stock.warehouse_id']) }}
            as replenishment_id,
        current_stock.product_id,
        current_stock.warehouse_id,
        products.product_name,
        products.category,
        current_stock.snapshot_date as as_of_date,
        current_stock.quantity_on_hand,
        current_stock.reorder_point,
        cast(demand.warehouse_share as double) as warehouse_share,
        cast({{ lead_weeks }} as integer) as lead_time_weeks,
        cast(demand.lead_time_units as double) as forecast_units_lead_time,
        cast(demand.daily_units as double) as forecast_daily_units,
        case
            when current_stock.quantity_on_hand <= 0 then cast(0 as double)
            when demand.daily_units > 0
                then cast(current_stock.quantity_on_hand / demand.daily_units as double)
        end as days_until_stockout,
        cast(
            greatest(ceiling(demand.cover_upper_units - current_stock.quantity_on_hand), 0)
            as bigint
        ) as suggested_order_units
    from current_stock
    inner join demand
        on current_stock.product_id = demand.product_id
        and current_stock.warehouse_id = demand.warehouse_id
    left join products
        on current_stock.product_id = products.product_id
)

select * from final
