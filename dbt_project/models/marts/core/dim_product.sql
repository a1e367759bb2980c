-- one row per version of a product (SCD2, e.g. one per price), plus the unknown member
-- (product_id -1)
with versions as (
    select * from {{ ref('int_products_historized') }}
),

known as (
    select
        product_version_id as product_key,
        product_id,
        version_number,
        sku,
        product_name,
        product_description,
        category,
        brand,
        price,
        is_active,
        created_at,
        valid_from,
        valid_to,
        is_current,
        is_deleted,
        false as is_unknown_member
    from versions
),

unknown_member as (
    select
        {{ unknown_member_key() }} as product_key,
        cast(-1 as bigint) as product_id,
        cast(0 as bigint) as version_number,
        cast('unknown' as {{ dbt.type_string() }}) as sku,
        cast('unknown' as {{ dbt.type_string() }}) as product_name,
        cast(null as {{ dbt.type_string() }}) as product_description,
        cast('unknown' as {{ dbt.type_string() }}) as category,
        cast('unknown' as {{ dbt.type_string() }}) as brand,
        cast(null as decimal(38, 2)) as price,
        false as is_active,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        {{ scd2_unknown_member_validity() }}
),

final as (
    select * from known
    union all
    select * from unknown_member
)

select * from final
