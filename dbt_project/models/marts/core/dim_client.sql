-- one row per version of a client (SCD2), plus the unknown member (client_id -1)
with versions as (
    select * from {{ ref('int_clients_historized') }}
),

known as (
    select
        client_version_id as client_key,
        client_id,
        version_number,
        first_name,
        last_name,
        email,
        phone,
        city,
        region,
        segment,
        created_at,
        valid_from,
        valid_to,
        is_current,
        is_deleted,
        false as is_unknown_member
    from versions
),

unknown_member as (
    select
        {{ unknown_member_key() }} as client_key,
        cast(-1 as bigint) as client_id,
        cast(0 as bigint) as version_number,
        cast(null as {{ dbt.type_string() }}) as first_name,
        cast(null as {{ dbt.type_string() }}) as last_name,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast('unknown' as {{ dbt.type_string() }}) as city,
        cast('unknown' as {{ dbt.type_string() }}) as region,
        cast('unknown' as {{ dbt.type_string() }}) as segment,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        {{ scd2_unknown_member_validity() }}
),

final as (
    select * from known
    union all
    select * from unknown_member
)

select * from final
