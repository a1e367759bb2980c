-- one row per product x warehouse x day, from the day the stock row first appears in
-- the change log up to the last day of data: the quantity on hand at the end of the
-- day, carried forward over days without a change, and the units that left and entered
-- the warehouse that day. Days after a delete have no row (until it is re-created).
with stock_changes as (
    select * from {{ ref('stg_oltp__stock_changes') }}
),

data_range as (
    select * from {{ ref('int_data_range_bounded') }}
),

calendar as (
    {{ date_spine('data_range', 'first_date', 'last_date') }}
),

sequenced as (
    select
        product_id,
        warehouse_id,
        change_op,
        quantity_on_hand,
        reorder_point,
        cast(effective_at as date) as change_date,
        -- a delete's row image is the row before it: the change itself moves nothing
        case
            when change_op in ('u', 'c') then quantity_on_hand - lag(
                case when change_op = 'd' then 0 else quantity_on_hand end
            ) over (
                partition by product_id, warehouse_id
                order by commit_position, event_position
            )
        end as quantity_change,
        row_number() over (
            partition by product_id, warehouse_id, cast(effective_at as date)
            order by commit_position desc, event_position desc
        ) as rank_in_day
    from stock_changes
),

movements as (
    select
        product_id,
        warehouse_id,
        change_date,
        sum(case when quantity_change < 0 then -quantity_change else 0 end) as units_issued,
        sum(case when quantity_change > 0 then quantity_change else 0 end) as units_received
    from sequenced
    group by product_id, warehouse_id, change_date
),

end_of_day as (
    -- the state left by the last change of each day
    select
        product_id,
        warehouse_id,
        change_date,
        change_op,
        quantity_on_hand,
        reorder_point,
        lead(change_date) over (
            partition by product_id, warehouse_id order by change_date
        ) as next_change_date
    from sequenced
    where rank_in_day = 1
),

filled as (
    select
        end_of_day.product_id,
        end_of_day.warehouse_id,
        calendar.date_day as snapshot_date,
        end_of_day.change_date as last_change_date,
        end_of_day.quantity_on_hand,
        end_of_day.reorder_point
    from end_of_day
    inner join calendar
        on end_of_day.change_date <= calendar.date_day
        and (
            end_of_day.next_change_date > calendar.date_day
            or end_of_day.next_change_date is null
        )
    where end_of_day.change_op <> 'd'
),

final as (
    select
        {{ surrogate_key(['filled.product_id', 'filled.warehouse_id', 'filled.snapshot_date']) }}
            as stock_level_id,
        filled.product_id,
        filled.warehouse_id,
        filled.snapshot_date,
        filled.last_change_date,
        filled.quantity_on_hand,
        filled.reorder_point,
        cast(coalesce(movements.units_issued, 0) as bigint) as units_issued,
        cast(coalesce(movements.units_received, 0) as bigint) as units_received
    from filled
    left join movements
        on filled.product_id = movements.product_id
        and filled.warehouse_id = movements.warehouse_id
        and filled.snapshot_date = movements.change_date
)

select * from final
