{#-
    No row points at its dimension's unknown member: `column_name` is a dimension's
    surrogate key, and the unknown member's key is unknown_member_key(versioned).
-#}
{% test not_unknown_member(model, column_name, versioned=true) %}

with final as (
    select * from {{ model }}
    where {{ column_name }} = {{ unknown_member_key(versioned=versioned) }}
)

select * from final

{% endtest %}
