-- one row per calendar month x product category: what was ordered, by order date;
-- cancelled orders are left out (their lines are deleted in the source)
{{ sales_by_category('month') }}
