-- one row per client x cutoff x rank: the time-split backtest of the propositions version
-- that made the latest propositions, each proposed product marked by whether the client
-- bought it in the horizon after the cutoff (order lines of orders not cancelled, by order
-- date: the days [cutoff, cutoff + horizon))
{%- set horizon_days = var('recommendation_horizon_days') %}

with backtests as (
    select * from {{ ref('stg_ml__recommendation_backtests') }}
),

recommendations as (
    select * from {{ ref('stg_ml__client_recommendations') }}
),

order_lines as (
    select * from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

clients as (
    select * from {{ ref('dim_client') }}
    where is_current and not is_unknown_member
),

-- the version of the run mart_client_recommendations serves (read from staging, so that a
-- defect in the propositions does not keep this mart from being built and audited)
serving_version as (
    select model_version
    from recommendations
    order by scored_at desc, scoring_run_id desc
    limit 1
),

-- a version's backtest is recorded once; should it be recorded again, the latest wins
latest_record as (
    select
        backtests.model_version,
        max(backtests.recorded_at) as recorded_at
    from backtests
    inner join serving_version
        on backtests.model_version = serving_version.model_version
    group by backtests.model_version
),

served as (
    select backtests.*
    from backtests
    inner join latest_record
        on backtests.model_version = latest_record.model_version
        and backtests.recorded_at = latest_record.recorded_at
),

cutoffs as (
    select distinct cutoff_date from served
),

bought as (
    select distinct
        cutoffs.cutoff_date,
        order_lines.client_id,
        order_lines.product_id
    from order_lines
    inner join cutoffs
        on order_lines.order_date >= cutoffs.cutoff_date
        and order_lines.order_date
        < cast({{ dbt.dateadd('day', horizon_days, 'cutoffs.cutoff_date') }} as date)
),

final as (
    select
        served.client_id,
        served.cutoff_date,
        served.rank,
        served.product_id,
        clients.region,
        clients.segment,
        cast(served.score as double) as score,
        bought.product_id is not null as bought_after_cutoff,
        served.model_version
    from served
    left join bought
        on served.cutoff_date = bought.cutoff_date
        and served.client_id = bought.client_id
        and served.product_id = bought.product_id
    left join clients
        on served.client_id = clients.client_id
)

select * from final
