-- one row per product x ISO week, from the product's first complete week of data to the
-- last complete week, weeks without a sale included (units 0): the demand features, each
-- known when the week is over (event_timestamp = the next Monday)
with order_items as (
    select * from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

products as (
    select * from {{ ref('dim_product') }}
    where not is_unknown_member
),

calendar as (
    select * from {{ ref('dim_date') }}
),

stock as (
    select * from {{ ref('fct_inventory_snapshot') }}
),

promotions as (
    select * from {{ ref('stg_oltp__promotions') }}
),

holidays as (
    select * from {{ ref('shop_holidays') }}
),

complete_weeks as (
    -- weeks whose seven days all lie in the data: from the first Monday to the last Sunday
    select week_start_date
    from calendar
    group by week_start_date
    having count(*) = 7
),

product_starts as (
    select
        product_id,
        cast({{ dbt.date_trunc('week', 'min(created_at)') }} as date) as created_week,
        max(case when is_current then category end) as current_category
    from products
    group by product_id
),

spine as (
    select
        product_starts.product_id,
        product_starts.current_category,
        complete_weeks.week_start_date
    from product_starts
    inner join complete_weeks
        on complete_weeks.week_start_date >= product_starts.created_week
),

product_days as (
    select
        spine.product_id,
        spine.week_start_date,
        spine.current_category,
        calendar.date_day,
        calendar.day_of_week
    from spine
    inner join calendar
        on spine.week_start_date = calendar.week_start_date
),

versioned_days as (
    -- the product version in force at the start of each day: its list price and category
    select
        product_days.*,
        versions.category,
        versions.price
    from product_days
    left join products as versions
        on product_days.product_id = versions.product_id
        and {{ scd2_valid_at('versions', 'cast(product_days.date_day as ' ~ dbt.type_timestamp() ~ ')') }}
),

category_promotion_days as (
    select
        promotions.category,
        calendar.date_day,
        max(promotions.discount_pct) as discount_pct
    from promotions
    inner join calendar
        on calendar.date_day between promotions.starts_on and promotions.ends_on
    group by promotions.category, calendar.date_day
),

stock_days as (
    select
        product_id,
        snapshot_date,
        sum(quantity_on_hand) as quantity_on_hand
    from stock
    group by product_id, snapshot_date
),

days as (
    select
        versioned_days.product_id,
        versioned_days.week_start_date,
        versioned_days.date_day,
        versioned_days.day_of_week,
        coalesce(versioned_days.category, versioned_days.current_category) as category,
        cast(versioned_days.price as double) as price,
        category_promotion_days.discount_pct as promotion_discount_pct,
        stock_days.quantity_on_hand,
        holidays.holiday_date
    from versioned_days
    left join category_promotion_days
        on coalesce(versioned_days.category, versioned_days.current_category)
            = category_promotion_days.category
        and versioned_days.date_day = category_promotion_days.date_day
    left join stock_days
        on versioned_days.product_id = stock_days.product_id
        and versioned_days.date_day = stock_days.snapshot_date
    left join holidays
        on versioned_days.date_day = holidays.holiday_date
),

weekly_units as (
    select
        order_items.product_id,
        calendar.week_start_date,
        sum(order_items.quantity) as units
    from order_items
    inner join calendar
        on order_items.order_date = calendar.date_day
    group by order_items.product_id, calendar.week_start_date
),

weeks as (
    select
        days.product_id,
        days.week_start_date,
        coalesce(
            max(case when days.day_of_week = 1 then days.category end), max(days.category)
        ) as category,
        avg(days.price) as avg_unit_price,
        sum(case when days.promotion_discount_pct is not null then 1 else 0 end) as promo_days,
        coalesce(max(cast(days.promotion_discount_pct as double)), 0) as promo_discount_pct,
        sum(case when days.quantity_on_hand = 0 then 1 else 0 end) as stockout_days,
        sum(case when days.holiday_date is not null then 1 else 0 end) as holiday_days
    from days
    group by days.product_id, days.week_start_date
),

with_units as (
    select
        weeks.*,
        coalesce(weekly_units.units, 0) as units
    from weeks
    left join weekly_units
        on weeks.product_id = weekly_units.product_id
        and weeks.week_start_date = weekly_units.week_start_date
),

category_weeks as (
    select
        category,
        week_start_date,
        avg(cast(sum(units) as double)) over (
            partition by category order by week_start_date
            rows between 3 preceding and current row
        ) as category_units_mean_4w,
        avg(cast(sum(units) as double)) over (
            partition by category order by week_start_date
            rows between 12 preceding and current row
        ) as category_units_mean_13w
    from with_units
    group by category, week_start_date
),

windowed as (
    -- the spine has every week of a product, so rows are weeks: lag 52 is 52 weeks back
    select
        with_units.*,
        lag(with_units.units, 52) over (
            partition by with_units.product_id order by with_units.week_start_date
        ) as units_lag_52,
        avg(cast(with_units.units as double)) over (
            partition by with_units.product_id order by with_units.week_start_date
            rows between 3 preceding and current row
        ) as units_mean_4w,
        avg(cast(with_units.units as double)) over (
            partition by with_units.product_id order by with_units.week_start_date
            rows between 12 preceding and current row
        ) as units_mean_13w,
        lag(with_units.avg_unit_price, 4) over (
            partition by with_units.product_id order by with_units.week_start_date
        ) as avg_unit_price_4w_ago
    from with_units
),

final as (
    select
        -- keys
        windowed.product_id,
        windowed.week_start_date,
        cast({{ dbt.dateadd('day', 7, 'windowed.week_start_date') }} as {{ dbt.type_timestamp() }})
            as event_timestamp,
        -- attributes
        windowed.category,
        cast({{ iso_week('windowed.week_start_date') }} as integer) as week_of_year,
        -- demand (the forecast's target) and its history
        cast(windowed.units as bigint) as units,
        cast(windowed.units_lag_52 as bigint) as units_lag_52,
        windowed.units_mean_4w,
        windowed.units_mean_13w,
        -- price
        windowed.avg_unit_price,
        100 * (windowed.avg_unit_price / nullif(windowed.avg_unit_price_4w_ago, 0) - 1)
            as price_change_pct_4w,
        -- promotions, stock-outs, holidays
        cast(windowed.promo_days as integer) as promo_days,
        windowed.promo_discount_pct,
        cast(windowed.stockout_days as integer) as stockout_days,
        cast(windowed.holiday_days as integer) as holiday_days,
        -- the category's demand
        category_weeks.category_units_mean_4w,
        category_weeks.category_units_mean_4w
        / nullif(category_weeks.category_units_mean_13w, 0) as category_trend
    from windowed
    inner join category_weeks
        on windowed.category = category_weeks.category
        and windowed.week_start_date = category_weeks.week_start_date
)

select * from final
