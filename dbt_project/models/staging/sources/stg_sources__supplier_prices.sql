-- one row per product and supplier: the unit cost of the supplier's latest price list
with source as (
    select * from {{ source('sources', 'supplier_price') }}
),

final as (
    select
        -- ids
        cast(product_id as bigint) as product_id,
        supplier,
        -- measures
        cast(unit_cost as decimal(38, 2)) as unit_cost,
        -- dates
        cast(effective_date as date) as effective_date,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
