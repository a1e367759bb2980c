-- one row per version of a client (SCD2): every snapshot read, insert or update in the
-- bronze change log opens a version; the next change of the same client closes it.
with changes as (
    select * from {{ ref('stg_oltp__client_changes') }}
),

sequenced as (
    select
        changes.*,
        lead(change_op) over (
            partition by client_id order by commit_position, event_position
        ) as next_change_op,
        lead(changed_at) over (
            partition by client_id order by commit_position, event_position
        ) as next_changed_at,
        last_value(change_op) over (
            partition by client_id order by commit_position, event_position
            rows between unbounded preceding and unbounded following
        ) as last_change_op
    from changes
),

versions as (
    select
        client_id,
        row_number() over (
            partition by client_id order by commit_position, event_position
        ) as version_number,
        first_name,
        last_name,
        email,
        phone,
        city,
        region,
        segment,
        created_at,
        updated_at,
        changed_at as valid_from,
        next_changed_at as valid_to,
        next_change_op is null as is_current,
        last_change_op = 'd' as is_deleted,
        change_op,
        commit_position,
        event_position
    from sequenced
    where change_op in ('r', 'c', 'u')
),

final as (
    select
        {{ surrogate_key(['client_id', 'version_number']) }} as client_version_id,
        versions.*
    from versions
)

select * from final
