-- one row per model version x cutoff x client x rank
with source as (
    select * from {{ source('ml', 'recommendation_backtests') }}
),

final as (
    select
        -- ids
        model_version,
        client_id,
        product_id,
        -- attributes
        cutoff_date,
        cast(rank as integer) as rank,
        score,
        -- timestamps (UTC)
        {{ to_utc_timestamp('recorded_at') }} as recorded_at
    from source
)

select * from final
