-- every product on sale when the latest forecasts' features were read is forecast: a
-- product missing from the forecast has no replenishment either (checked once a model has
-- scored; before, the forecast marts are empty)
with forecasts as (
    select * from {{ ref('mart_demand_forecast') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and is_active and not is_deleted and not is_unknown_member
),

scoring as (
    select max(features_as_of) as features_as_of from forecasts
),

final as (
    select products.product_id
    from products
    cross join scoring
    where
        scoring.features_as_of is not null
        and products.created_at < scoring.features_as_of
        and products.product_id not in (select forecasts.product_id from forecasts)
)

select * from final
