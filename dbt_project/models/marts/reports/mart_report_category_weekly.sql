-- one row per ISO week x client region x product category: revenue, units and orders
-- holding the category, against the previous week and the same week a year before, for
-- the weekly insight reports
{{ report_sales_weekly(['region', 'category']) }}
