-- one row per transporter (current state, type 1), plus the unknown member
-- (transporter_id -1)
with transporters as (
    select * from {{ ref('stg_oltp__transporters') }}
),

known as (
    select
        {{ surrogate_key(['transporter_id']) }} as transporter_key,
        transporter_id,
        transporter_name,
        service_level,
        cost_per_order,
        updated_at,
        false as is_unknown_member
    from transporters
),

unknown_member as (
    select
        {{ unknown_member_key(versioned=false) }} as transporter_key,
        cast(-1 as bigint) as transporter_id,
        cast('unknown' as {{ dbt.type_string() }}) as transporter_name,
        cast('unknown' as {{ dbt.type_string() }}) as service_level,
        cast(null as decimal(38, 2)) as cost_per_order,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at,
        true as is_unknown_member
),

final as (
    select * from known
    union all
    select * from unknown_member
)

select * from final
