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
        _op as change_op,
        _commit_pos as commit_position,
        _event_pos as event_position,
        _tx_id as source_transaction_id,
        _offset as change_offset,
        _is_snapshot as is_snapshot,
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
        {{ to_utc_timestamp('updated_at') }} as updated_at,
        {{ to_utc_timestamp('_source_ts') }} as changed_at,
        {{ to_utc_timestamp('_ingested_at') }} as ingested_at
    from source
)

select * from final
