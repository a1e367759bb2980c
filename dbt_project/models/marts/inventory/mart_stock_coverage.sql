-- one row per product x warehouse that has stock on the last day of data: how many days
-- the stock on hand lasts at the pace units left the warehouse over the last
-- {{ var('stock_coverage_window_days') }} days of data
{%- set window_days = var('stock_coverage_window_days') %}
{%- set risk_days = var('stock_coverage_risk_days') %}

with snapshots as (
    select * from {{ ref('fct_inventory_snapshot') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current
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

recent_demand as (
    select
        snapshots.product_id,
        snapshots.warehouse_id,
        sum(snapshots.units_issued) as units_issued
    from snapshots
    inner join last_day
        on snapshots.snapshot_date > {{ dbt.dateadd('day', -window_days, 'last_day.last_date') }}
    group by snapshots.product_id, snapshots.warehouse_id
),

coverage as (
    select
        current_stock.product_id,
        current_stock.warehouse_id,
        current_stock.snapshot_date as as_of_date,
        current_stock.quantity_on_hand,
        current_stock.reorder_point,
        current_stock.is_below_reorder_point,
        cast(coalesce(recent_demand.units_issued, 0) as bigint) as units_sold_in_window,
        cast(
            cast(coalesce(recent_demand.units_issued, 0) as decimal(18, 4)) / {{ window_days }}
            as decimal(18, 4)
        ) as avg_daily_units_sold
    from current_stock
    left join recent_demand
        on current_stock.product_id = recent_demand.product_id
        and current_stock.warehouse_id = recent_demand.warehouse_id
),

final as (
    select
        {{ surrogate_key(['coverage.product_id', 'coverage.warehouse_id']) }} as stock_coverage_id,
        coverage.product_id,
        coverage.warehouse_id,
        products.product_name,
        products.category,
        coverage.as_of_date,
        coverage.quantity_on_hand,
        coverage.reorder_point,
        coverage.units_sold_in_window,
        coverage.avg_daily_units_sold,
        case
            when coverage.quantity_on_hand <= 0 then cast(0 as decimal(18, 1))
            when coverage.avg_daily_units_sold > 0
                then cast(
                    coverage.quantity_on_hand / coverage.avg_daily_units_sold as decimal(18, 1)
                )
        end as coverage_days,
        coverage.is_below_reorder_point,
        (
            coverage.is_below_reorder_point
            or (
                coverage.avg_daily_units_sold > 0
                and coverage.quantity_on_hand < coverage.avg_daily_units_sold * {{ risk_days }}
            )
        ) as is_at_risk
    from coverage
    left join products
        on coverage.product_id = products.product_id
)

select * from final
