{#-
    Date and time helpers whose SQL differs between engines. Each goes through
    adapter.dispatch: `default__` is portable SQL, `duckdb__` / `trino__` override it.
-#}

{#- A timestamp with time zone as a plain timestamp in UTC (wall-clock time in UTC). -#}
{% macro to_utc_timestamp(expression) -%}
    {{ return(adapter.dispatch('to_utc_timestamp', 'lakehouse')(expression)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(expression) -%}
    cast({{ expression }} at time zone 'UTC' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(expression) -%}
    timezone('UTC', {{ expression }})
{%- endmacro %}


{#- ISO day of the week: 1 = Monday ... 7 = Sunday. -#}
{% macro iso_day_of_week(date_expression) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'lakehouse')(date_expression)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(date_expression) -%}
    extract(isodow from {{ date_expression }})
{%- endmacro %}

{% macro trino__iso_day_of_week(date_expression) -%}
    day_of_week({{ date_expression }})
{%- endmacro %}


{#- The year an ISO week belongs to (differs from the calendar year around New Year). -#}
{% macro iso_year(date_expression) -%}
    {{ return(adapter.dispatch('iso_year', 'lakehouse')(date_expression)) }}
{%- endmacro %}

{% macro default__iso_year(date_expression) -%}
    extract(isoyear from {{ date_expression }})
{%- endmacro %}

{% macro trino__iso_year(date_expression) -%}
    year_of_week({{ date_expression }})
{%- endmacro %}


{#- ISO week number, 1..53. -#}
{% macro iso_week(date_expression) -%}
    {{ return(adapter.dispatch('iso_week', 'lakehouse')(date_expression)) }}
{%- endmacro %}

{% macro default__iso_week(date_expression) -%}
    extract(week from {{ date_expression }})
{%- endmacro %}


{#- English names of the day and of the month. -#}
{% macro day_name(date_expression) -%}
    {{ return(adapter.dispatch('day_name', 'lakehouse')(date_expression)) }}
{%- endmacro %}

{% macro default__day_name(date_expression) -%}
    dayname({{ date_expression }})
{%- endmacro %}

{% macro trino__day_name(date_expression) -%}
    date_format({{ date_expression }}, '%W')
{%- endmacro %}

{% macro month_name(date_expression) -%}
    {{ return(adapter.dispatch('month_name', 'lakehouse')(date_expression)) }}
{%- endmacro %}

{% macro default__month_name(date_expression) -%}
    monthname({{ date_expression }})
{%- endmacro %}

{% macro trino__month_name(date_expression) -%}
    date_format({{ date_expression }}, '%M')
{%- endmacro %}


{#- An integer yyyymmdd key of a date, e.g. 20240131. -#}
{% macro date_key(date_expression) -%}
    cast(
        extract(year from {{ date_expression }}) * 10000
        + extract(month from {{ date_expression }}) * 100
        + extract(day from {{ date_expression }})
        as integer
    )
{%- endmacro %}


{#- Timestamp -> seconds since the Unix epoch. -#}
{% macro to_epoch_seconds(timestamp_expression) -%}
    {{ return(adapter.dispatch('to_epoch_seconds', 'lakehouse')(timestamp_expression)) }}
{%- endmacro %}

{% macro default__to_epoch_seconds(timestamp_expression) -%}
    epoch({{ timestamp_expression }})
{%- endmacro %}

{% macro trino__to_epoch_seconds(timestamp_expression) -%}
    to_unixtime({{ timestamp_expression }})
{%- endmacro %}
