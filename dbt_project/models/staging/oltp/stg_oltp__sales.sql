-- one row per invoiced sale (current state in silver)
with source as (
    select * from {{ source('silver', 'sale') }}
),

final as (
    select
        -- ids
        cast(sale_id as bigint) as sale_id,
        cast(order_id as bigint) as order_id,
        cast(client_id as bigint) as client_id,
        -- attributes
        payment_method,
        -- measures
        cast(gross_amount as decimal(38, 2)) as gross_amount,
        cast(discount_amount as decimal(38, 2)) as discount_amount,
        cast(net_amount as decimal(38, 2)) as net_amount,
        -- timestamps (UTC)
        cast(sold_at as {{ dbt.type_timestamp() }}) as sold_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
