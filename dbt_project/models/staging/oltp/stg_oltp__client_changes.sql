-- one row per change event of a client (bronze change log; snapshot reads, inserts,
-- updates and deletes; a delete carries the row as it was before the delete)
with source as (
    select * from {{ source('bronze', 'client') }}
),

final as (
    select
        -- ids
        cast(client_id as bigint) as client_id,
        -- change event
        {{ change_event_columns() }}
        -- row image
        first_name,
        last_name,
        email,
        phone,
        city,
        region,
        segment,
        -- timestamps (UTC)
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        {{ to_utc_timestamp('updated_at') }} as updated_at
    from source
)

select * from final
