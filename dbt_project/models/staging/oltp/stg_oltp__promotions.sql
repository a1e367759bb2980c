-- one row per promotion campaign (current state in silver)
with source as (
    select * from {{ source('silver', 'promotion') }}
),

final as (
    select
        -- ids
        cast(promotion_id as bigint) as promotion_id,
        -- attributes
        name as promotion_name,
        category,
        cast(discount_pct as decimal(38, 2)) as discount_pct,
        cast(starts_on as date) as starts_on,
        cast(ends_on as date) as ends_on,
        -- timestamps (UTC)
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as source_updated_at
    from source
)

select * from final
