-- one row per client x rank: the propositions of the latest scoring run, with the client's
-- region and segment (which row-level security filters by region) and the product's name
-- and category, from their current versions
with recommendations as (
    select * from {{ ref('stg_ml__client_recommendations') }}
),

clients as (
    select * from {{ ref('dim_client') }}
    where is_current and not is_unknown_member
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and not is_unknown_member
),

latest_run as (
    select scoring_run_id
    from recommendations
    order by scored_at desc, scoring_run_id desc
    limit 1
),

final as (
    select
        recommendations.client_id,
        recommendations.rank,
        recommendations.product_id,
        clients.region,
        clients.segment,
        products.product_name,
        products.category,
        cast(recommendations.score as double) as score,
        recommendations.reason,
        recommendations.model_version,
        recommendations.features_as_of,
        recommendations.scored_at
    from recommendations
    inner join latest_run
        on recommendations.scoring_run_id = latest_run.scoring_run_id
    left join clients
        on recommendations.client_id = clients.client_id
    left join products
        on recommendations.product_id = products.product_id
)

select * from final
