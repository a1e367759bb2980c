{#-
    A deterministic surrogate key: the md5 of the fields cast to text, joined by '-',
    with a placeholder for nulls (so (1, null) and (null, 1) differ). Built from dbt's
    cross-database macros, so the same key comes out on DuckDB and Trino.
-#}
{% macro surrogate_key(field_list) -%}
    {%- set parts = [] -%}
    {%- for field in field_list -%}
        {%- do parts.append(
            "coalesce(" ~ dbt.cast(field, dbt.type_string()) ~ ", '_lakehouse_null_')"
        ) -%}
        {%- if not loop.last -%}
            {%- do parts.append("'-'") -%}
        {%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}


{#-
    The key of a dimension's unknown member: natural key -1, and version 0 when the
    dimension is type 2 (its key is over the natural key and the version number).
-#}
{% macro unknown_member_key(versioned=true) -%}
    {%- if versioned -%}
        {{ surrogate_key(["-1", "0"]) }}
    {%- else -%}
        {{ surrogate_key(["-1"]) }}
    {%- endif -%}
{%- endmacro %}
