-- one row per invoiced sale (recorded when the order is paid); the client points at the
-- version valid when the sale was made
with sales as (
    select * from {{ ref('stg_oltp__sales') }}
),

clients as (
    select * from {{ ref('dim_client') }}
    where not is_unknown_member
),

final as (
    select
        -- keys
        sales.sale_id,
        sales.order_id,
        sales.client_id,
        coalesce(clients.client_key, {{ unknown_member_key() }}) as client_key,
        -- when
        sales.sold_at,
        cast(sales.sold_at as date) as sale_date,
        {{ date_key('cast(sales.sold_at as date)') }} as sale_date_key,
        -- attributes
        sales.payment_method,
        -- measures
        cast(sales.gross_amount as decimal(14, 2)) as gross_amount,
        cast(sales.discount_amount as decimal(14, 2)) as discount_amount,
        cast(sales.net_amount as decimal(14, 2)) as net_amount
    from sales
    left join clients
        on sales.client_id = clients.client_id
        and {{ scd2_valid_at('clients', 'sales.sold_at') }}
)

select * from final
