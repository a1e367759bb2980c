-- one row per client with at least one sale: recency, frequency and monetary value as of
-- the last day of data, their quintile scores (5 = best) and a segment label
with sales as (
    select * from {{ ref('fct_sale') }}
),

client_versions as (
    select * from {{ ref('dim_client') }}
    where not is_unknown_member
),

data_range as (
    select * from {{ ref('int_data_range_bounded') }}
),

latest_clients as (
    -- the latest version of each client, also of clients deleted since
    select
        client_versions.*,
        row_number() over (
            partition by client_id order by version_number desc
        ) as recency_rank
    from client_versions
),

clients as (
    select * from latest_clients
    where recency_rank = 1
),

per_client as (
    select
        client_id,
        min(sale_date) as first_sale_date,
        max(sale_date) as last_sale_date,
        count(*) as frequency,
        sum(net_amount) as monetary
    from sales
    group by client_id
),

measured as (
    select
        per_client.client_id,
        per_client.first_sale_date,
        per_client.last_sale_date,
        data_range.last_date as as_of_date,
        {{ dbt.datediff('per_client.last_sale_date', 'data_range.last_date', 'day') }}
            as recency_days,
        per_client.frequency,
        cast(per_client.monetary as decimal(18, 2)) as monetary
    from per_client
    cross join data_range
),

scored as (
    select
        measured.*,
        ntile(5) over (order by recency_days desc, client_id asc) as recency_score,
        ntile(5) over (order by frequency asc, client_id asc) as frequency_score,
        ntile(5) over (order by monetary asc, client_id asc) as monetary_score
    from measured
),

final as (
    select
        scored.client_id,
        clients.client_key,
        clients.segment as client_segment,
        clients.region,
        scored.first_sale_date,
        scored.last_sale_date,
        scored.as_of_date,
        scored.recency_days,
        scored.frequency,
        scored.monetary,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        {{ dbt.concat([
            dbt.cast('scored.recency_score', dbt.type_string()),
            dbt.cast('scored.frequency_score', dbt.type_string()),
            dbt.cast('scored.monetary_score', dbt.type_string()),
        ]) }} as rfm_cell,
        case
            when
                scored.recency_score >= 4
                and scored.frequency_score >= 4
                and scored.monetary_score >= 4
                then 'champions'
            when scored.recency_score >= 3 and scored.frequency_score >= 3 then 'loyal'
            when scored.recency_score >= 4 and scored.frequency_score <= 2 then 'new'
            when scored.recency_score <= 2 and scored.frequency_score >= 3 then 'at_risk'
            when scored.recency_score <= 2 and scored.frequency_score <= 2 then 'hibernating'
            else 'needs_attention'
        end as rfm_segment,
        coalesce(clients.is_deleted, false) as is_client_deleted
    from scored
    left join clients
        on scored.client_id = clients.client_id
)

select * from final
