-- one row per product x warehouse x ISO week, over the weeks of feat_product_weekly: the
-- units ordered by the clients the warehouse serves, and the warehouse's stock that week
with product_weeks as (
    select * from {{ ref('feat_product_weekly') }}
),

sales_lines as (
    select * from {{ ref('mart_sales_lines') }}
),

stock as (
    select * from {{ ref('fct_inventory_snapshot') }}
),

calendar as (
    select * from {{ ref('dim_date') }}
),

region_warehouses as (
    select * from {{ ref('region_warehouses') }}
),

warehouses as (
    select distinct warehouse_id from region_warehouses
),

spine as (
    select
        product_weeks.product_id,
        warehouses.warehouse_id,
        product_weeks.week_start_date,
        product_weeks.event_timestamp
    from product_weeks
    cross join warehouses
),

weekly_units as (
    -- by order date, in the region of the client at order time
    select
        sales_lines.product_id,
        region_warehouses.warehouse_id,
        sales_lines.week_start_date,
        sum(sales_lines.quantity) as units
    from sales_lines
    inner join region_warehouses
        on sales_lines.region = region_warehouses.region
    group by sales_lines.product_id, region_warehouses.warehouse_id, sales_lines.week_start_date
),

weekly_stock as (
    select
        stock.product_id,
        stock.warehouse_id,
        calendar.week_start_date,
        max(case when calendar.day_of_week = 7 then stock.quantity_on_hand end)
            as stock_on_hand,
        max(case when calendar.day_of_week = 7 then stock.reorder_point end) as reorder_point,
        sum(case when stock.quantity_on_hand = 0 then 1 else 0 end) as stockout_days
    from stock
    inner join calendar
        on stock.snapshot_date = calendar.date_day
    group by stock.product_id, stock.warehouse_id, calendar.week_start_date
),

final as (
    select
        -- keys
        spine.product_id,
        spine.warehouse_id,
        spine.week_start_date,
        spine.event_timestamp,
        -- demand
        cast(coalesce(weekly_units.units, 0) as bigint) as units,
        -- stock
        cast(weekly_stock.stock_on_hand as bigint) as stock_on_hand,
        cast(coalesce(weekly_stock.stockout_days, 0) as integer) as stockout_days,
        cast(weekly_stock.reorder_point as bigint) as reorder_point
    from spine
    left join weekly_units
        on spine.product_id = weekly_units.product_id
        and spine.warehouse_id = weekly_units.warehouse_id
        and spine.week_start_date = weekly_units.week_start_date
    left join weekly_stock
        on spine.product_id = weekly_stock.product_id
        and spine.warehouse_id = weekly_stock.warehouse_id
        and spine.week_start_date = weekly_stock.week_start_date
)

select * from final
