-- one row per category x ISO week x promotion announced for it: what the promotion
-- calendar of that category-week was once the promotion was announced (event_timestamp),
-- counting every promotion announced by then, so that a point-in-time lookup of the
-- latest row as of a date returns what was known on that date, future weeks included
with promotions as (
    select * from {{ ref('stg_oltp__promotions') }}
),

digits as (
    select 0 as d union all select 1 union all select 2 union all select 3
    union all select 4 union all select 5 union all select 6 union all select 7
    union all select 8 union all select 9
),

day_offsets as (
    select tens.d * 10 + units.d as day_offset
    from digits as tens
    cross join digits as units
),

promotion_days as (
    -- a promotion's days (up to 100), each with its ISO week; announced when the row was
    -- written (its last change: a later edit dates the whole promotion from the edit)
    select
        promotions.promotion_id,
        promotions.category,
        cast(promotions.discount_pct as double) as discount_pct,
        promotions.updated_at as announced_at,
        cast({{ dbt.dateadd('day', 'day_offsets.day_offset', 'promotions.starts_on') }} as date)
            as promotion_date
    from promotions
    inner join day_offsets
        on day_offsets.day_offset
        <= {{ dbt.datediff('promotions.starts_on', 'promotions.ends_on', 'day') }}
),

dated as (
    select
        promotion_days.*,
        cast({{ dbt.date_trunc('week', 'promotion_days.promotion_date') }} as date)
            as week_start_date
    from promotion_days
),

announcements as (
    select distinct
        category,
        week_start_date,
        promotion_id,
        announced_at
    from dated
),

known as (
    -- the category-week as known once the announcement was made: every promotion of the
    -- category-week announced by then (ties in time broken by promotion_id)
    select
        announcements.category,
        announcements.week_start_date,
        announcements.promotion_id,
        announcements.announced_at,
        count(distinct dated.promotion_date) as promo_days,
        max(dated.discount_pct) as promo_discount_pct
    from announcements
    inner join dated
        on announcements.category = dated.category
        and announcements.week_start_date = dated.week_start_date
        and (
            dated.announced_at < announcements.announced_at
            or (
                dated.announced_at = announcements.announced_at
                and dated.promotion_id <= announcements.promotion_id
            )
        )
    group by
        announcements.category,
        announcements.week_start_date,
        announcements.promotion_id,
        announcements.announced_at
),

final as (
    select
        -- keys
        category,
        week_start_date,
        {{ date_key('week_start_date') }} as week_key,
        promotion_id,
        announced_at as event_timestamp,
        -- the category-week's promotions as known then
        cast(promo_days as integer) as announced_promo_days,
        promo_discount_pct as announced_discount_pct
    from known
)

select * from final
