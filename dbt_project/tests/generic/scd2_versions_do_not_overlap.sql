{#-
    The versions of one natural key (`key_column`) in an SCD2 model, ordered by
    `version_column`, follow each other: each valid_from is at or after the valid_to of
    the version before it, valid_to is never before valid_from, and only the last
    version may be open (valid_to null).
-#}
{% test scd2_versions_do_not_overlap(model, key_column, version_column='version_number') %}

with versions as (
    select
        {{ key_column }} as natural_key,
        {{ version_column }} as version_number,
        valid_from,
        valid_to,
        lag(valid_to) over (
            partition by {{ key_column }} order by {{ version_column }}
        ) as previous_valid_to,
        lead(valid_from) over (
            partition by {{ key_column }} order by {{ version_column }}
        ) as next_valid_from
    from {{ model }}
),

final as (
    select * from versions
    where valid_to < valid_from
        or valid_from < previous_valid_to
        or (valid_to is null and next_valid_from is not null)
)

select * from final

{% endtest %}
