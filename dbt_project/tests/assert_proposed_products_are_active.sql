-- every product proposed in the latest run is in the catalogue now: a current version,
-- on sale, not deleted (a proposition of a product that cannot be bought is a defect)
with recommendations as (
    select * from {{ ref('mart_client_recommendations') }}
),

products as (
    select * from {{ ref('dim_product') }}
    where is_current and is_active and not is_deleted and not is_unknown_member
),

final as (
    select recommendations.*
    from recommendations
    left join products
        on recommendations.product_id = products.product_id
    where products.product_id is null
)

select * from final
