-- one row per client region x product x warehouse serving the region, for the products at
-- stock-out risk on the last day of data (mart_stock_coverage's is_at_risk), with the
-- forecast's days until stock-out and suggested order when the product was scored
with coverage as (
    select * from {{ ref('mart_stock_coverage') }}
    where is_at_risk
),

replenishment as (
    select * from {{ ref('mart_replenishment') }}
),

region_warehouses as (
    select * from {{ ref('region_warehouses') }}
),

final as (
    select
        {{ surrogate_key(['region_warehouses.region', 'coverage.stock_coverage_id']) }}
            as report_stock_risk_id,
        region_warehouses.region,
        coverage.product_id,
        coverage.warehouse_id,
        coalesce(coverage.product_name, 'unknown') as product_name,
        coalesce(coverage.category, 'unknown') as category,
        coverage.as_of_date,
        coverage.quantity_on_hand,
        coverage.reorder_point,
        coverage.coverage_days,
        coverage.is_below_reorder_point,
        replenishment.days_until_stockout,
        replenishment.suggested_order_units
    from coverage
    inner join region_warehouses
        on coverage.warehouse_id = region_warehouses.warehouse_id
    left join replenishment
        on coverage.product_id = replenishment.product_id
        and coverage.warehouse_id = replenishment.warehouse_id
)

select * from final
