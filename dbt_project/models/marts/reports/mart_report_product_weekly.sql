-- one row per ISO week x client region x product sold that week or the week before: units
-- and revenue against the previous week, the insight reports' top movers
with lines as (
    select * from {{ ref('mart_sales_lines') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

bounds as (
    select max(week_start_date) as last_week from lines
),

sold as (
    select
        week_start_date,
        region,
        product_id,
        sum(quantity) as units,
        sum(net_amount) as revenue
    from lines
    group by week_start_date, region, product_id
),

-- a product counts in a week when it sold then or the week before (a drop to zero is a move)
keys as (
    select week_start_date, region, product_id from sold
    union
    select
        cast({{ dbt.dateadd('day', 7, 'sold.week_start_date') }} as date) as week_start_date,
        sold.region,
        sold.product_id
    from sold
    cross join bounds
    where sold.week_start_date < bounds.last_week
),

final as (
    select
        {{ surrogate_key(['keys.week_start_date', 'keys.region', 'keys.product_id']) }}
            as report_product_id,
        keys.week_start_date,
        keys.region,
        keys.product_id,
        coalesce(products.product_name, 'unknown') as product_name,
        coalesce(products.category, 'unknown') as category,
        cast(coalesce(this_week.units, 0) as bigint) as units,
        cast(coalesce(this_week.revenue, 0) as decimal(18, 2)) as revenue,
        cast(coalesce(previous_week.units, 0) as bigint) as previous_week_units,
        cast(coalesce(previous_week.revenue, 0) as decimal(18, 2)) as previous_week_revenue
    from keys
    left join sold as this_week
        on keys.week_start_date = this_week.week_start_date
        and keys.region = this_week.region
        and keys.product_id = this_week.product_id
    left join sold as previous_week
        on previous_week.week_start_date
        = cast({{ dbt.dateadd('day', -7, 'keys.week_start_date') }} as date)
        and keys.region = previous_week.region
        and keys.product_id = previous_week.product_id
    left join products
        on keys.product_id = products.product_id
)

select * from final
