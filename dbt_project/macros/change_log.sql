{#- The bronze change log's own columns, renamed once for every *_changes staging model. -#}
{% macro change_event_columns() -%}
        _op as change_op,
        _commit_pos as commit_position,
        _event_pos as event_position,
        _tx_id as source_transaction_id,
        _offset as change_offset,
        _is_snapshot as is_snapshot,
        {{ to_utc_timestamp('_source_ts') }} as changed_at,
        {{ to_utc_timestamp('_ingested_at') }} as ingested_at,
{%- endmacro %}
