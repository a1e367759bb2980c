{#-
    One row per day (column `date_day`) from `start_column` to `end_column` inclusive,
    read from the single-row relation or CTE `bounds`. Used as a subquery:

        select * from ({{ date_spine('bounds', 'first_date', 'last_date') }}) as spine
-#}
{% macro date_spine(bounds, start_column, end_column) -%}
    {{ return(adapter.dispatch('date_spine', 'lakehouse')(bounds, start_column, end_column)) }}
{%- endmacro %}

{#- Portable: day offsets 0..99,999 from a cross join of digits. -#}
{% macro default__date_spine(bounds, start_column, end_column) -%}
    with digits as (
        select 0 as d union all select 1 union all select 2 union all select 3
        union all select 4 union all select 5 union all select 6 union all select 7
        union all select 8 union all select 9
    ),

    offsets as (
        select
            d1.d + 10 * d2.d + 100 * d3.d + 1000 * d4.d + 10000 * d5.d as day_offset
        from digits as d1
        cross join digits as d2
        cross join digits as d3
        cross join digits as d4
        cross join digits as d5
    )

    select
        cast({{ dbt.dateadd('day', 'offsets.day_offset', 'b.' ~ start_column) }} as date) as date_day
    from {{ bounds }} as b
    inner join offsets
        on offsets.day_offset <= {{ dbt.datediff('b.' ~ start_column, 'b.' ~ end_column, 'day') }}
{%- endmacro %}

{% macro duckdb__date_spine(bounds, start_column, end_column) -%}
    select cast(spine.date_day as date) as date_day
    from {{ bounds }} as b
    cross join unnest(
        generate_series(
            cast(b.{{ start_column }} as date),
            cast(b.{{ end_column }} as date),
            interval 1 day
        )
    ) as spine (date_day)
{%- endmacro %}

{% macro trino__date_spine(bounds, start_column, end_column) -%}
    select spine.date_day
    from {{ bounds }} as b
    cross join unnest(
        sequence(
            cast(b.{{ start_column }} as date),
            cast(b.{{ end_column }} as date),
            interval '1' day
        )
    ) as spine (date_day)
{%- endmacro %}
