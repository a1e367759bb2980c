-- one row per client x ISO week, from the week of the client's first sale to the last
-- complete week of data: the client's recent buying as known when the week is over
with sales as (
    select * from {{ ref('fct_sale') }}
),

clients as (
    select * from {{ ref('dim_client') }}
    where not is_unknown_member
),

calendar as (
    select * from {{ ref('dim_date') }}
),

complete_weeks as (
    select week_start_date
    from calendar
    group by week_start_date
    having count(*) = 7
),

weekly_sales as (
    select
        sales.client_id,
        calendar.week_start_date,
        max(sales.sale_date) as last_sale_date
    from sales
    inner join calendar
        on sales.sale_date = calendar.date_day
    group by sales.client_id, calendar.week_start_date
),

first_weeks as (
    select
        client_id,
        min(week_start_date) as first_week
    from weekly_sales
    group by client_id
),

spine as (
    select
        first_weeks.client_id,
        complete_weeks.week_start_date,
        cast({{ dbt.dateadd('day', 6, 'complete_weeks.week_start_date') }} as date)
            as week_end_date,
        cast({{ dbt.dateadd('day', 7, 'complete_weeks.week_start_date') }} as {{ dbt.type_timestamp() }})
            as event_timestamp
    from first_weeks
    inner join complete_weeks
        on complete_weeks.week_start_date >= first_weeks.first_week
),

recency as (
    select
        spine.*,
        max(weekly_sales.last_sale_date) over (
            partition by spine.client_id order by spine.week_start_date
            rows between unbounded preceding and current row
        ) as last_sale_date
    from spine
    left join weekly_sales
        on spine.client_id = weekly_sales.client_id
        and spine.week_start_date = weekly_sales.week_start_date
),

last_90_days as (
    select
        spine.client_id,
        spine.week_start_date,
        count(sales.sale_id) as orders_90d,
        sum(sales.net_amount) as net_revenue_90d
    from spine
    left join sales
        on spine.client_id = sales.client_id
        and sales.sale_date <= spine.week_end_date
        and sales.sale_date > {{ dbt.dateadd('day', -90, 'spine.week_end_date') }}
    group by spine.client_id, spine.week_start_date
),

final as (
    select
        -- keys
        recency.client_id,
        recency.week_start_date,
        recency.event_timestamp,
        -- attributes of the client version in force when the week ended
        versions.segment,
        versions.region,
        -- behaviour
        cast(
            {{ dbt.datediff('recency.last_sale_date', 'recency.week_end_date', 'day') }} as bigint
        ) as recency_days,
        cast(last_90_days.orders_90d as bigint) as orders_90d,
        cast(coalesce(last_90_days.net_revenue_90d, 0) as double) as net_revenue_90d
    from recency
    inner join last_90_days
        on recency.client_id = last_90_days.client_id
        and recency.week_start_date = last_90_days.week_start_date
    left join clients as versions
        on recency.client_id = versions.client_id
        and {{ scd2_valid_at('versions', 'recency.event_timestamp') }}
)

select * from final
