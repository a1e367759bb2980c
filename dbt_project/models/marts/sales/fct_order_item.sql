-- one row per order line in the current state of the source (lines of cancelled orders
-- are deleted in the source, so they are not here); client and product point at the
-- version valid when the order was placed
with order_items as (
    select * from {{ ref('stg_oltp__order_items') }}
),

orders as (
    select * from {{ ref('stg_oltp__orders') }}
),

clients as (
    select * from {{ ref('dim_client') }}
    where not is_unknown_member
),

products as (
    select * from {{ ref('dim_product') }}
    where not is_unknown_member
),

transporters as (
    select * from {{ ref('dim_transporter') }}
    where not is_unknown_member
),

lines as (
    select
        order_items.order_item_id,
        order_items.order_id,
        orders.client_id,
        order_items.product_id,
        orders.transporter_id,
        order_items.promotion_id,
        orders.order_status,
        orders.ordered_at,
        orders.shipped_at,
        order_items.quantity,
        order_items.unit_price,
        order_items.discount_pct,
        order_items.discount_amount
    from order_items
    left join orders
        on order_items.order_id = orders.order_id
),

final as (
    select
        -- keys
        lines.order_item_id,
        lines.order_id,
        lines.client_id,
        lines.product_id,
        lines.transporter_id,
        lines.promotion_id,
        coalesce(clients.client_key, {{ unknown_member_key() }}) as client_key,
        coalesce(products.product_key, {{ unknown_member_key() }}) as product_key,
        coalesce(
            transporters.transporter_key, {{ unknown_member_key(versioned=false) }}
        ) as transporter_key,
        -- when
        lines.ordered_at,
        cast(lines.ordered_at as date) as order_date,
        {{ date_key('cast(lines.ordered_at as date)') }} as order_date_key,
        lines.shipped_at,
        cast(lines.shipped_at as date) as ship_date,
        -- attributes
        lines.order_status,
        -- measures
        lines.quantity,
        lines.unit_price,
        lines.discount_pct,
        cast(lines.quantity * lines.unit_price as decimal(14, 2)) as gross_amount,
        cast(lines.discount_amount as decimal(14, 2)) as discount_amount,
        cast(
            lines.quantity * lines.unit_price - lines.discount_amount as decimal(14, 2)
        ) as net_amount
    from lines
    left join clients
        on lines.client_id = clients.client_id
        and {{ scd2_valid_at('clients', 'lines.ordered_at') }}
    left join products
        on lines.product_id = products.product_id
        and {{ scd2_valid_at('products', 'lines.ordered_at') }}
    left join transporters
        on lines.transporter_id = transporters.transporter_id
)

select * from final
