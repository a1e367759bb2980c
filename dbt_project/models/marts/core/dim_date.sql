-- one row per calendar day, from the first to the last day of activity in the data
with data_range as (
    select * from {{ ref('int_data_range_bounded') }}
),

calendar as (
    {{ date_spine('data_range', 'first_date', 'last_date') }}
),

final as (
    select
        {{ date_key('date_day') }} as date_key,
        date_day,
        cast(extract(year from date_day) as integer) as year_number,
        cast(extract(quarter from date_day) as integer) as quarter_number,
        cast(extract(month from date_day) as integer) as month_number,
        {{ month_name('date_day') }} as month_name,
        cast(extract(day from date_day) as integer) as day_of_month,
        cast({{ iso_year('date_day') }} as integer) as iso_year,
        cast({{ iso_week('date_day') }} as integer) as iso_week,
        cast({{ iso_day_of_week('date_day') }} as integer) as day_of_week,
        {{ day_name('date_day') }} as day_name,
        cast({{ dbt.date_trunc('week', 'date_day') }} as date) as week_start_date,
        cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start_date,
        cast({{ dbt.date_trunc('quarter', 'date_day') }} as date) as quarter_start_date,
        {{ iso_day_of_week('date_day') }} in (6, 7) as is_weekend
    from calendar
)

select * from final
