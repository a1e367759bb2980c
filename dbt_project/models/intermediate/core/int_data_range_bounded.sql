-- one row: the first and the last day of activity in the data (orders, sales and stock
-- changes), which bound the calendar, the stock history and the "as of" of the marts.
with orders as (
    select * from {{ ref('stg_oltp__orders') }}
),

sales as (
    select * from {{ ref('stg_oltp__sales') }}
),

stock_changes as (
    select * from {{ ref('stg_oltp__stock_changes') }}
),

activity as (
    select cast(ordered_at as date) as activity_date from orders
    union all
    select cast(updated_at as date) from orders
    union all
    select cast(sold_at as date) from sales
    union all
    select cast(effective_at as date) from stock_changes where change_op <> 'd'
),

final as (
    select
        min(activity_date) as first_date,
        max(activity_date) as last_date
    from activity
)

select * from final
