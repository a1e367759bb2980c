-- one row per version of a client (SCD2): every snapshot read, insert or update in the
-- bronze change log opens a version; the next change of the same client closes it.
with versions as (
    {{ scd2_versions(
        ref('stg_oltp__client_changes'),
        'client_id',
        ['first_name', 'last_name', 'email', 'phone', 'city', 'region', 'segment',
         'created_at', 'updated_at'],
    ) }}
),

final as (
    select
        {{ surrogate_key(['client_id', 'version_number']) }} as client_version_id,
        versions.*
    from versions
)

select * from final
