{#-
    Every value of `column_name` is greater than `value`, or equal to it with
    `or_equal=true`. Nulls are not judged: not_null (or a contract) covers them.
-#}
{% test greater_than(model, column_name, value, or_equal=false) %}

with final as (
    select * from {{ model }}
    where {{ column_name }} {{ '<' if or_equal else '<=' }} {{ value }}
)

select * from final

{% endtest %}
