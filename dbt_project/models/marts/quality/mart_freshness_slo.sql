-- one row per day (UTC) with samples: its sampled minutes and good ones, and the
-- commit-to-mart freshness SLO over the window ending that day (error budget, burn rate)
with samples as (
    select * from {{ ref('stg_quality__freshness_samples') }}
),

minutes as (
    -- a minute is as fresh as its worst sample
    select
        {{ dbt.date_trunc('minute', 'sampled_at') }} as sampled_minute,
        max(freshness_seconds) as freshness_seconds
    from samples
    group by 1
),

days as (
    select
        cast({{ dbt.date_trunc('day', 'sampled_minute') }} as date) as slo_date,
        cast(count(*) as bigint) as minutes_sampled,
        cast(
            sum(
                case
                    when freshness_seconds <= {{ var('slo_freshness_minutes') }} * 60 then 1
                    else 0
                end
            ) as bigint
        ) as minutes_good,
        max(freshness_seconds) as max_freshness_seconds
    from minutes
    group by 1
),

windowed as (
    -- the window of slo_window_days ending on each day
    select
        days.slo_date,
        cast(sum(earlier.minutes_sampled) as bigint) as window_minutes_sampled,
        cast(sum(earlier.minutes_good) as bigint) as window_minutes_good
    from days
    inner join days as earlier
        on
            earlier.slo_date <= days.slo_date
            and earlier.slo_date
            > {{ dbt.dateadd('day', -var('slo_window_days'), 'days.slo_date') }}
    group by days.slo_date
),

rated as (
    select
        days.slo_date,
        days.minutes_sampled,
        days.minutes_good,
        days.minutes_sampled - days.minutes_good as minutes_bad,
        days.max_freshness_seconds,
        windowed.window_minutes_sampled,
        windowed.window_minutes_good,
        cast({{ var('slo_target') }} as double) as slo_target,
        cast({{ var('slo_freshness_minutes') }} as bigint) as slo_freshness_minutes,
        cast({{ var('slo_window_days') }} as bigint) as slo_window_days,
        -- the bad minutes the window may have
        (1 - cast({{ var('slo_target') }} as double)) * windowed.window_minutes_sampled
            as budget_minutes,
        -- the share of the day's minutes that were bad, over the share the SLO allows
        cast(days.minutes_sampled - days.minutes_good as double)
        / days.minutes_sampled
        / (1 - cast({{ var('slo_target') }} as double)) as burn_rate
    from days
    inner join windowed on days.slo_date = windowed.slo_date
),

latest as (
    select max(slo_date) as slo_date from days
),

final as (
    select
        -- ids
        rated.slo_date,
        -- attributes
        rated.minutes_sampled,
        rated.minutes_good,
        rated.minutes_bad,
        cast(rated.minutes_good as double) / rated.minutes_sampled as good_ratio,
        rated.max_freshness_seconds,
        rated.window_minutes_sampled,
        rated.window_minutes_good,
        cast(rated.window_minutes_good as double) / rated.window_minutes_sampled
            as window_good_ratio,
        rated.budget_minutes,
        1 - (rated.window_minutes_sampled - rated.window_minutes_good) / rated.budget_minutes
            as budget_remaining,
        rated.burn_rate,
        case
            when rated.window_minutes_sampled - rated.window_minutes_good >= rated.budget_minutes
                then 'exhausted'
            when rated.burn_rate >= cast({{ var('slo_burn_rate_alert') }} as double)
                then 'burning'
            else 'ok'
        end as slo_status,
        rated.slo_target,
        rated.slo_freshness_minutes,
        rated.slo_window_days,
        (rated.slo_date = latest.slo_date) as is_latest_day
    from rated
    cross join latest
)

select * from final
