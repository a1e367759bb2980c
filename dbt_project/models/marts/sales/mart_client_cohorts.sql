-- cohort retention: one row per cohort month (the month of a client's first sale) x region
-- x months since that month, with the cohort's size and how many of its clients bought in
-- that month; a client counts in the region of their latest version
with sales as (
    select * from {{ ref('fct_sale') }}
),

clients as (
    select * from {{ ref('mart_client_rfm') }}
),

activity as (
    select distinct
        client_id,
        cast({{ dbt.date_trunc('month', 'sale_date') }} as date) as activity_month
    from sales
),

cohorts as (
    select
        client_id,
        min(activity_month) as cohort_month
    from activity
    group by client_id
),

members as (
    select
        cohorts.client_id,
        cohorts.cohort_month,
        coalesce(clients.region, 'unknown') as region
    from cohorts
    left join clients
        on cohorts.client_id = clients.client_id
),

cohort_sizes as (
    select
        cohort_month,
        region,
        count(*) as cohort_clients
    from members
    group by cohort_month, region
),

retained as (
    select
        members.cohort_month,
        members.region,
        {{ dbt.datediff('members.cohort_month', 'activity.activity_month', 'month') }}
            as months_since_first_sale,
        count(*) as active_clients
    from activity
    inner join members
        on activity.client_id = members.client_id
    group by 1, 2, 3
),

final as (
    select
        {{ surrogate_key(['retained.cohort_month', 'retained.region',
                          'retained.months_since_first_sale']) }} as client_cohort_id,
        retained.cohort_month,
        retained.region,
        cast(retained.months_since_first_sale as integer) as months_since_first_sale,
        cast(cohort_sizes.cohort_clients as bigint) as cohort_clients,
        cast(retained.active_clients as bigint) as active_clients
    from retained
    inner join cohort_sizes
        on
            retained.cohort_month = cohort_sizes.cohort_month
            and retained.region = cohort_sizes.region
)

select * from final
