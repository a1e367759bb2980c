-- one row per sample of the served marts' freshness
with source as (
    select * from {{ source('quality', 'freshness_samples') }}
),

final as (
    select
        -- attributes
        sampled_by,
        freshness_seconds,
        -- timestamps (UTC)
        {{ to_utc_timestamp('sampled_at') }} as sampled_at,
        {{ to_utc_timestamp('served_source_commit') }} as served_source_commit_at
    from source
)

select * from final
