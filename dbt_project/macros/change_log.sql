{#-
    The bronze change log's own columns, renamed once for every *_changes staging model.
    changed_at is when the source committed the change; effective_at is when it happened
    in the business: the row's own updated_at (what the application stamped), and for a
    delete, whose row image is the row before it, the commit time. They are the same
    clock on a live database; they differ when the source replays history, as the demo
    shop does, so versions and stock history follow effective_at.
-#}
{% macro change_event_columns() -%}
        _op as change_op,
        _commit_pos as commit_position,
        _event_pos as event_position,
        _tx_id as source_transaction_id,
        _offset as change_offset,
        _is_snapshot as is_snapshot,
        {{ to_utc_timestamp('_source_ts') }} as changed_at,
        case
            when _op = 'd' then {{ to_utc_timestamp('_source_ts') }}
            else {{ to_utc_timestamp('updated_at') }}
        end as effective_at,
        {{ to_utc_timestamp('_ingested_at') }} as ingested_at,
{%- endmacro %}
