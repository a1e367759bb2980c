{#-
    Join condition: the version `version` (a relation alias with valid_from, valid_to
    and version_number) was valid at the timestamp `at`. Versions are half-open
    [valid_from, valid_to). The first version also covers everything before it: rows
    that existed before change capture started (the initial snapshot) were valid
    before the snapshot read them.
-#}
{% macro scd2_valid_at(version, at) -%}
    ({{ version }}.valid_to is null or {{ at }} < {{ version }}.valid_to)
    and ({{ at }} >= {{ version }}.valid_from or {{ version }}.version_number = 1)
{%- endmacro %}

{#-
    SCD2 versions from a change log (one row per change, with change_op, effective_at,
    commit_position and event_position): every snapshot read, insert or update opens a
    version of `key`; the key's next change, an update or a delete, closes it. All
    versions are kept, also those that came and went between two runs.
-#}
{% macro scd2_versions(changes, key, columns) -%}
with sequenced as (
    select
        changes.*,
        lead(change_op) over (
            partition by {{ key }} order by commit_position, event_position
        ) as next_change_op,
        lead(effective_at) over (
            partition by {{ key }} order by commit_position, event_position
        ) as next_effective_at,
        last_value(change_op) over (
            partition by {{ key }} order by commit_position, event_position
            rows between unbounded preceding and unbounded following
        ) as last_change_op
    from {{ changes }} as changes
)

select
    {{ key }},
    row_number() over (
        partition by {{ key }} order by commit_position, event_position
    ) as version_number,
    {%- for column in columns %}
    {{ column }},
    {%- endfor %}
    effective_at as valid_from,
    next_effective_at as valid_to,
    next_change_op is null as is_current,
    last_change_op = 'd' as is_deleted,
    change_op,
    commit_position,
    event_position
from sequenced
where change_op in ('r', 'c', 'u')
{%- endmacro %}

{#-
    The validity columns of an SCD2 dimension's unknown member (the row facts point to
    when their key is missing): valid since forever, current, not deleted.
-#}
{% macro scd2_unknown_member_validity() -%}
        cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}) as valid_from,
        cast(null as {{ dbt.type_timestamp() }}) as valid_to,
        true as is_current,
        false as is_deleted,
        true as is_unknown_member
{%- endmacro %}
