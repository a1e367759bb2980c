-- the reports' weekly sales add up, week by week and region by region, to the order lines
-- (mart_sales_lines), to the cent and the unit; the categories add up to their region; a
-- week's "previous week" is the row of the week before
with lines as (
    select
        week_start_date,
        region,
        sum(net_amount) as revenue,
        sum(quantity) as units,
        count(distinct order_id) as order_count
    from {{ ref('mart_sales_lines') }}
    group by week_start_date, region
),

regions as (
    select * from {{ ref('mart_report_region_weekly') }}
),

categories as (
    select
        week_start_date,
        region,
        sum(revenue) as revenue,
        sum(units) as units
    from {{ ref('mart_report_category_weekly') }}
    group by week_start_date, region
),

sold_mismatch as (
    select regions.week_start_date, regions.region, 'lines' as what
    from regions
    left join lines
        on regions.week_start_date = lines.week_start_date
        and regions.region = lines.region
    where
        regions.revenue <> coalesce(lines.revenue, 0)
        or regions.units <> coalesce(lines.units, 0)
        or regions.order_count <> coalesce(lines.order_count, 0)
),

missing_week as (
    select lines.week_start_date, lines.region, 'missing' as what
    from lines
    left join regions
        on lines.week_start_date = regions.week_start_date
        and lines.region = regions.region
    where regions.region is null
),

category_mismatch as (
    select regions.week_start_date, regions.region, 'categories' as what
    from regions
    inner join categories
        on regions.week_start_date = categories.week_start_date
        and regions.region = categories.region
    where regions.revenue <> categories.revenue or regions.units <> categories.units
),

previous_mismatch as (
    select this_week.week_start_date, this_week.region, 'previous week' as what
    from regions as this_week
    inner join regions as previous_week
        on previous_week.week_start_date
        = cast({{ dbt.dateadd('day', -7, 'this_week.week_start_date') }} as date)
        and this_week.region = previous_week.region
    where this_week.previous_week_revenue <> previous_week.revenue
),

final as (
    select * from sold_mismatch
    union all
    select * from missing_week
    union all
    select * from category_mismatch
    union all
    select * from previous_mismatch
)

select * from final
