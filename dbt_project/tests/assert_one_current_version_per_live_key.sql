-- SCD2 dimensions: a key that is not deleted has exactly one current version, a deleted
-- key has none
with clients as (
    select
        'client' as dimension,
        client_id as natural_key,
        max(case when is_deleted then 1 else 0 end) as is_deleted,
        sum(case when is_current then 1 else 0 end) as current_versions
    from {{ ref('dim_client') }}
    group by client_id
),

products as (
    select
        'product' as dimension,
        product_id as natural_key,
        max(case when is_deleted then 1 else 0 end) as is_deleted,
        sum(case when is_current then 1 else 0 end) as current_versions
    from {{ ref('dim_product') }}
    group by product_id
),

keys as (
    select * from clients
    union all
    select * from products
),

final as (
    select * from keys
    where
        (is_deleted = 0 and current_versions <> 1)
        or (is_deleted = 1 and current_versions <> 0)
)

select * from final
