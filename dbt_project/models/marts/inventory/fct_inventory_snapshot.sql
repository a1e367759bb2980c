-- one row per product x warehouse x day (periodic snapshot): the stock at the end of the
-- day, from the day change capture first saw the stock row to the last day of data
with stock_levels as (
    select * from {{ ref('int_stock_levels_forward_filled') }}
),

final as (
    select
        -- keys
        stock_level_id as inventory_snapshot_id,
        product_id,
        warehouse_id,
        snapshot_date,
        {{ date_key('snapshot_date') }} as snapshot_date_key,
        -- measures
        quantity_on_hand,
        reorder_point,
        units_issued,
        units_received,
        quantity_on_hand < reorder_point as is_below_reorder_point,
        quantity_on_hand = 0 as is_out_of_stock,
        last_change_date
    from stock_levels
)

select * from final
