{#-
    The insight reports' weekly sales by `by` (a list of columns of mart_sales_lines, e.g.
    ['region'] or ['region', 'category']): revenue (net), units and orders of each ISO week
    from the first to the last week of data, every week present (zero when nothing sold),
    beside the previous week's and the same ISO week's of the year before (52 weeks
    earlier; null before the data starts). Orders are counted distinct at the grain, so
    they add up over regions (an order has one client) but not over categories (an order
    can hold several). `is_complete_week`: the data holds the week's Sunday.
-#}
{% macro report_sales_weekly(by) -%}
{%- set keys = by | join(', ') -%}
{%- set key_fields = ['this_week.week_start_date'] -%}
{%- for column in by -%}
    {%- do key_fields.append('this_week.' ~ column) -%}
{%- endfor -%}
with lines as (
    select * from {{ ref('mart_sales_lines') }}
),

dates as (
    select * from {{ ref('dim_date') }}
),

bounds as (
    select
        min(week_start_date) as first_week,
        max(week_start_date) as last_week,
        max(order_date) as last_date
    from lines
),

weeks as (
    select distinct dates.week_start_date
    from dates
    inner join bounds
        on dates.week_start_date between bounds.first_week and bounds.last_week
),

members as (
    select distinct {{ keys }} from lines
),

spine as (
    select
        weeks.week_start_date,
        {%- for column in by %}
        members.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from weeks
    cross join members
),

sold as (
    select
        week_start_date,
        {{ keys }},
        sum(net_amount) as revenue,
        sum(quantity) as units,
        count(distinct order_id) as order_count
    from lines
    group by week_start_date, {{ keys }}
),

weekly as (
    select
        spine.week_start_date,
        {%- for column in by %}
        spine.{{ column }},
        {%- endfor %}
        coalesce(sold.revenue, 0) as revenue,
        coalesce(sold.units, 0) as units,
        coalesce(sold.order_count, 0) as order_count
    from spine
    left join sold
        on spine.week_start_date = sold.week_start_date
        {%- for column in by %}
        and spine.{{ column }} = sold.{{ column }}
        {%- endfor %}
),

final as (
    select
        {{ surrogate_key(key_fields) }}
            as report_sales_id,
        this_week.week_start_date,
        {%- for column in by %}
        this_week.{{ column }},
        {%- endfor %}
        cast(this_week.revenue as decimal(18, 2)) as revenue,
        cast(this_week.units as bigint) as units,
        cast(this_week.order_count as bigint) as order_count,
        cast(previous_week.revenue as decimal(18, 2)) as previous_week_revenue,
        cast(previous_week.units as bigint) as previous_week_units,
        cast(previous_week.order_count as bigint) as previous_week_order_count,
        cast(last_year.revenue as decimal(18, 2)) as last_year_revenue,
        cast(last_year.units as bigint) as last_year_units,
        cast(last_year.order_count as bigint) as last_year_order_count,
        (
            cast({{ dbt.dateadd('day', 6, 'this_week.week_start_date') }} as date)
            <= bounds.last_date
        ) as is_complete_week
    from weekly as this_week
    cross join bounds
    left join weekly as previous_week
        on previous_week.week_start_date
        = cast({{ dbt.dateadd('day', -7, 'this_week.week_start_date') }} as date)
        {%- for column in by %}
        and previous_week.{{ column }} = this_week.{{ column }}
        {%- endfor %}
    left join weekly as last_year
        on last_year.week_start_date
        = cast({{ dbt.dateadd('day', -364, 'this_week.week_start_date') }} as date)
        {%- for column in by %}
        and last_year.{{ column }} = this_week.{{ column }}
        {%- endfor %}
)

select * from final
{%- endmacro %}
