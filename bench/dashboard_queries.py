"""The queries behind the dashboards (sales, inventory, clients), as an analyst would
write them over the published marts, in SQL that DuckDB, Trino and Spark SQL all accept.

``{m}`` stands for the qualified schema of the marts on each engine (``Warehouse.schema``
of the warehouse port on DuckDB, the bench's registered schema on Trino and Spark).
"""

from __future__ import annotations

QUERIES: dict[str, str] = {
    # Sales overview
    "revenue_by_week_and_category": """
        select d.iso_year, d.iso_week, p.category,
               sum(f.net_amount) as revenue, sum(f.quantity) as units
        from {m}.fct_order_item f
        join {m}.dim_date d on f.order_date_key = d.date_key
        join {m}.dim_product p on f.product_key = p.product_key
        where f.order_status <> 'cancelled'
        group by d.iso_year, d.iso_week, p.category
        order by d.iso_year, d.iso_week, p.category
    """,
    "revenue_by_month_and_region": """
        select d.month_start_date, c.region, sum(f.net_amount) as revenue,
               count(distinct f.order_id) as orders
        from {m}.fct_order_item f
        join {m}.dim_date d on f.order_date_key = d.date_key
        join {m}.dim_client c on f.client_key = c.client_key
        group by d.month_start_date, c.region
        order by d.month_start_date, c.region
    """,
    "top_products_last_90_days": """
        select p.product_id, p.product_name, sum(f.net_amount) as revenue
        from {m}.fct_order_item f
        join {m}.dim_product p on f.product_key = p.product_key
        where f.order_date > (select max(order_date) from {m}.fct_order_item) - interval '90' day
        group by p.product_id, p.product_name
        order by revenue desc, p.product_id
        limit 20
    """,
    "revenue_year_over_year": """
        with yearly as (
            select d.year_number, p.category, sum(f.net_amount) as revenue
            from {m}.fct_order_item f
            join {m}.dim_date d on f.order_date_key = d.date_key
            join {m}.dim_product p on f.product_key = p.product_key
            group by d.year_number, p.category
        )
        select cur.year_number, cur.category, cur.revenue,
               cur.revenue - prev.revenue as change
        from yearly cur
        left join yearly prev
            on prev.category = cur.category and prev.year_number = cur.year_number - 1
        order by cur.year_number, cur.category
    """,
    # Inventory
    "stock_on_hand_by_day": """
        select snapshot_date, sum(quantity_on_hand) as on_hand,
               sum(case when is_out_of_stock then 1 else 0 end) as out_of_stock
        from {m}.fct_inventory_snapshot
        group by snapshot_date
        order by snapshot_date
    """,
    "products_at_risk": """
        select p.category, count(*) as at_risk, avg(s.coverage_days) as avg_coverage_days
        from {m}.mart_stock_coverage s
        join {m}.dim_product p on s.product_id = p.product_id and p.is_current
        where s.is_at_risk
        group by p.category
        order by p.category
    """,
    # Clients
    "rfm_segments": """
        select rfm_segment, count(*) as clients, avg(monetary) as avg_monetary
        from {m}.mart_client_rfm
        group by rfm_segment
        order by rfm_segment
    """,
    "basket_size_by_month": """
        with baskets as (
            select order_id, min(order_date) as order_date, count(*) as lines,
                   sum(net_amount) as amount
            from {m}.fct_order_item
            group by order_id
        )
        select d.month_start_date, avg(b.lines) as avg_lines, avg(b.amount) as avg_amount
        from baskets b
        join {m}.dim_date d on b.order_date = d.date_day
        group by d.month_start_date
        order by d.month_start_date
    """,
}
