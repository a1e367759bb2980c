-- one row per version of a product (SCD2): every snapshot read, insert or update in the
-- bronze change log opens a version; the next change of the same product closes it.
with versions as (
    {{ scd2_versions(
        ref('stg_oltp__product_changes'),
        'product_id',
        ['sku', 'product_name', 'product_description', 'category', 'brand', 'price',
         'is_active', 'created_at', 'updated_at'],
    ) }}
),

final as (
    select
        {{ surrogate_key(['product_id', 'version_number']) }} as product_version_id,
        versions.*
    from versions
)

select * from final
