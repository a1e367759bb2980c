{#-
    On DuckDB the delta plugin copies each silver and bronze source table into a schema of
    that name when a model first reads it. Two threads reading two tables of one layer at
    once would both create the schema, and DuckDB fails one of them (a catalog write-write
    conflict); created before any model runs, the schemas exist already. Elsewhere (Trino)
    the lake's schemas are the catalog's: nothing to do.
-#}
{% macro create_source_schemas() -%}
    {%- if target.type == 'duckdb' -%}
        create schema if not exists silver; create schema if not exists bronze
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
