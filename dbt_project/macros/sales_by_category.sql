{#-
    The sales aggregates by period x product category, one definition for every grain
    (`week`: ISO weeks from Monday; `month`: calendar months). What was ordered, by order
    date, in the category of the product version at order time; cancelled orders are
    left out (their lines are deleted in the source). The period's label columns are the
    grain's own: ISO year and week, or year and month number.
-#}
{% macro sales_by_category(grain) -%}
{%- set labels = {
    'week': [
        ('iso_year', iso_year('period_start_date')),
        ('iso_week', iso_week('period_start_date')),
    ],
    'month': [
        ('year_number', 'extract(year from period_start_date)'),
        ('month_number', 'extract(month from period_start_date)'),
    ],
} -%}
{%- if grain not in labels -%}
    {{ exceptions.raise_compiler_error(
        "sales_by_category: grain '" ~ grain ~ "' is not one of " ~ (labels | list | join(', '))
    ) }}
{%- endif -%}
with order_items as (
    select * from {{ ref('fct_order_item') }}
    where order_status <> 'cancelled'
),

products as (
    select * from {{ ref('dim_product') }}
),

lines as (
    select
        cast({{ dbt.date_trunc(grain, 'order_items.order_date') }} as date) as period_start_date,
        products.category,
        order_items.order_id,
        order_items.quantity,
        order_items.gross_amount,
        order_items.discount_amount,
        order_items.net_amount
    from order_items
    inner join products
        on order_items.product_key = products.product_key
),

aggregated as (
    select
        period_start_date,
        category,
        count(distinct order_id) as order_count,
        count(*) as order_line_count,
        sum(quantity) as units_sold,
        sum(gross_amount) as gross_amount,
        sum(discount_amount) as discount_amount,
        sum(net_amount) as net_amount
    from lines
    group by period_start_date, category
),

final as (
    select
        {{ surrogate_key(['period_start_date', 'category']) }} as sales_{{ grain }}_category_id,
        period_start_date as {{ grain }}_start_date,
        {%- for name, expression in labels[grain] %}
        cast({{ expression }} as integer) as {{ name }},
        {%- endfor %}
        category,
        cast(order_count as bigint) as order_count,
        cast(order_line_count as bigint) as order_line_count,
        cast(units_sold as bigint) as units_sold,
        cast(gross_amount as decimal(18, 2)) as gross_amount,
        cast(discount_amount as decimal(18, 2)) as discount_amount,
        cast(net_amount as decimal(18, 2)) as net_amount
    from aggregated
)

select * from final
{%- endmacro %}
