-- one row per ISO week x client region: revenue, units and orders against the previous
-- week and the same week a year before, for the weekly insight reports
{{ report_sales_weekly(['region']) }}
