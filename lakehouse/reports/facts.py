"""The facts of a report: every number computed by SQL over the published marts (the
``mart_report_*`` aggregates dbt builds, the stock and data-health marts), read through
the warehouse port; Python only assembles the rows into one JSON-ready dict.

A region's report reads only rows whose ``region`` is that region. The product forecasts
are the whole business's (no region in them), so only the whole business's report has
anomalies; stock at risk is by the warehouses that serve the region.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from lakehouse.exceptions import ReportError
from lakehouse.reports.store import WHOLE_BUSINESS, valid_week
from lakehouse.warehouse import Warehouse

INTERVAL_PCT = 80  # the forecast interval the anomalies are judged against
TOP = 5  # movers up and down
LISTED = 10  # anomalies and products at risk listed (all are counted)
TREND_WEEKS = 12
UNKNOWN_REGION = "unknown"  # the unknown member's region: no scope of its own

# revenue, units, orders and basket of a week against the previous week and last year,
# grouped by {group} (nothing, region or category): ratios and changes are computed here,
# from sums, never averaged
_SALES = """
with picked as (
    select * from {mart}
    where week_start_date = ? {region_filter}
),

summed as (
    select
        {group_select}
        cast(sum(revenue) as double) as revenue,
        cast(sum(units) as bigint) as units,
        cast(sum(order_count) as bigint) as orders,
        cast(sum(previous_week_revenue) as double) as previous_week_revenue,
        cast(sum(previous_week_units) as bigint) as previous_week_units,
        cast(sum(previous_week_order_count) as bigint) as previous_week_orders,
        cast(sum(last_year_revenue) as double) as last_year_revenue,
        cast(sum(last_year_units) as bigint) as last_year_units,
        cast(sum(last_year_order_count) as bigint) as last_year_orders
    from picked
    {group_by}
),

baskets as (
    select
        summed.*,
        revenue / nullif(orders, 0) as basket,
        previous_week_revenue / nullif(previous_week_orders, 0) as previous_week_basket,
        last_year_revenue / nullif(last_year_orders, 0) as last_year_basket
    from summed
)

select
    {group_select}
    round(revenue, 2) as revenue,
    units,
    orders,
    round(basket, 2) as basket,
    round(previous_week_revenue, 2) as previous_week_revenue,
    previous_week_units,
    previous_week_orders,
    round(previous_week_basket, 2) as previous_week_basket,
    round(last_year_revenue, 2) as last_year_revenue,
    last_year_units,
    last_year_orders,
    round(last_year_basket, 2) as last_year_basket,
    {changes}
from baskets
{order_by}
"""

# each measure's change in percent against each comparison week (null: nothing to compare)
_CHANGES = ",\n    ".join(
    f"round(100 * ({m} - {w}_{m}) / nullif(cast({w}_{m} as double), 0), 1) as {m}_change_pct{s}"
    for w, s in (("previous_week", ""), ("last_year", "_last_year"))
    for m in ("revenue", "units", "orders", "basket")
)

_MOVERS = """
with moves as (
    select
        product_id,
        max(product_name) as product_name,
        max(category) as category,
        cast(sum(units) as bigint) as units,
        cast(sum(previous_week_units) as bigint) as previous_week_units,
        cast(sum(revenue) as double) as revenue,
        cast(sum(previous_week_revenue) as double) as previous_week_revenue
    from {mart}
    where week_start_date = ? {region_filter}
    group by product_id
)

select
    product_name,
    category,
    units,
    previous_week_units,
    units - previous_week_units as units_change,
    round(revenue, 2) as revenue,
    round(previous_week_revenue, 2) as previous_week_revenue,
    round(revenue - previous_week_revenue, 2) as revenue_change
from moves
where revenue {sign} previous_week_revenue
order by abs(revenue - previous_week_revenue) desc, product_id
limit {top}
"""

_ANOMALIES = """
select
    product_name,
    category,
    round(actual_units, 1) as actual_units,
    round(forecast_units, 1) as forecast_units,
    round(lower_80, 1) as lower_80,
    round(upper_80, 1) as upper_80,
    interval_position as position
from {mart}
where week_start_date = ? and is_outside_interval
order by
    greatest(actual_units - upper_80, lower_80 - actual_units) desc, product_id
limit {listed}
"""

_ANOMALY_COUNTS = """
select
    cast(count(*) as bigint) as products_checked,
    cast(coalesce(sum(case when is_outside_interval then 1 else 0 end), 0) as bigint)
        as outside_interval,
    cast(coalesce(sum(case when interval_position = 'above' then 1 else 0 end), 0) as bigint)
        as above,
    cast(coalesce(sum(case when interval_position = 'below' then 1 else 0 end), 0) as bigint)
        as below
from {mart}
where week_start_date = ?
"""

_STOCK_RISK = """
with at_risk as (
    select distinct
        product_id,
        warehouse_id,
        product_name,
        category,
        quantity_on_hand,
        reorder_point,
        cast(coverage_days as double) as coverage_days,
        days_until_stockout,
        as_of_date
    from {mart}
    {region_where}
)

select
    product_name,
    category,
    warehouse_id,
    quantity_on_hand,
    reorder_point,
    coverage_days,
    round(days_until_stockout, 1) as days_until_stockout,
    as_of_date,
    cast(count(*) over () as bigint) as products_at_risk
from at_risk
order by coalesce(coverage_days, 1e9), quantity_on_hand, product_id, warehouse_id
limit {listed}
"""

_HEALTH = """
select
    run_id,
    outcome,
    case
        when outcome = 'blocked' or checks_failed > 0 then 'fail'
        when checks_warned > 0 then 'warn'
        else 'ok'
    end as status,
    checks_run,
    checks_failed,
    checks_warned,
    round(freshness_seconds / 60.0, 1) as freshness_minutes,
    dead_letters,
    finished_at
from {mart}
where is_latest_run
order by finished_at desc
limit 1
"""

_FAILED_CHECKS = """
select check_name, check_status as status
from {mart}
where is_latest_run and not is_passed
order by is_blocking desc, check_name
limit {listed}
"""

_TREND = """
select week_start_date as week, round(cast(sum(revenue) as double), 2) as revenue,
    cast(sum(units) as bigint) as units
from {mart}
where week_start_date between ? and ? {region_filter}
group by week_start_date
order by week_start_date
"""


def regions(marts: Warehouse) -> list[str]:
    """The regions that sold, from the data (the unknown member's left out)."""
    rows = marts.query(
        f"select distinct region from {marts.qualified('mart_report_region_weekly')} "
        "where region <> ? order by region",
        [UNKNOWN_REGION],
    )
    return [str(r) for r in rows.column(0).to_pylist()]


def report_week(marts: Warehouse, week: date | str | None = None) -> date:
    """The week to report: ``week`` when the data holds it whole, else (None) the last
    complete week in the data."""
    mart = marts.qualified("mart_report_region_weekly")
    if week is None:
        found = marts.query(f"select max(week_start_date) from {mart} where is_complete_week")
        last = found.column(0)[0].as_py()
        if last is None:
            raise ReportError("the published marts hold no complete week of sales to report")
        return _as_date(last)
    monday = valid_week(week)
    found = marts.query(
        f"select count(*) from {mart} where week_start_date = ? and is_complete_week", [monday]
    )
    if not found.column(0)[0].as_py():
        raise ReportError(f"the published marts hold no complete week {monday.isoformat()}")
    return monday


def compute_facts(marts: Warehouse, scope: str, week: date) -> dict[str, Any]:
    """The facts of ``scope``'s report of ``week``: aggregates only, no row of a client."""
    region = None if scope == WHOLE_BUSINESS else scope
    where, params = ("and region = ?", [region]) if region else ("", [])

    def sales(mart: str, group: str | None) -> list[dict[str, Any]]:
        sql = _SALES.format(
            mart=marts.qualified(mart),
            region_filter=where,
            group_select=f"{group}," if group else "",
            group_by=f"group by {group}" if group else "",
            order_by=f"order by revenue desc, {group}" if group else "",
            changes=_CHANGES,
        )
        return _rows(marts, sql, [week, *params])

    totals = sales("mart_report_region_weekly", None)
    if not totals or totals[0]["revenue"] is None:
        raise ReportError(f"no sales in {scope}'s week {week.isoformat()} in the published marts")
    facts: dict[str, Any] = {
        "scope": scope,
        "week": week.isoformat(),
        "week_end": (week + timedelta(days=6)).isoformat(),
        "iso_year": week.isocalendar().year,
        "iso_week": week.isocalendar().week,
        "previous_week": (week - timedelta(days=7)).isoformat(),
        "last_year_week": (week - timedelta(days=364)).isoformat(),
        "currency": "EUR",
        "totals": totals[0],
        "by_region": sales("mart_report_region_weekly", "region") if region is None else [],
        "by_category": sales("mart_report_category_weekly", "category"),
    }
    movers = marts.qualified("mart_report_product_weekly")
    facts["top_movers"] = {
        direction: _rows(
            marts,
            _MOVERS.format(mart=movers, region_filter=where, sign=sign, top=TOP),
            [week, *params],
        )
        for direction, sign in (("up", ">"), ("down", "<"))
    }
    facts["anomalies"] = _anomalies(marts, week) if region is None else None
    facts["stock_risk"] = _stock_risk(marts, region)
    facts["data_health"] = _data_health(marts)
    facts["trend"] = _rows(
        marts,
        _TREND.format(mart=marts.qualified("mart_report_region_weekly"), region_filter=where),
        [week - timedelta(weeks=TREND_WEEKS - 1), week, *params],
    )
    return facts


def _anomalies(marts: Warehouse, week: date) -> dict[str, Any]:
    mart = marts.qualified("mart_report_forecast_check")
    counts = _rows(marts, _ANOMALY_COUNTS.format(mart=mart), [week])[0]
    listed = _rows(marts, _ANOMALIES.format(mart=mart, listed=LISTED), [week])
    return {"interval_pct": INTERVAL_PCT, **counts, "products": listed}


def _stock_risk(marts: Warehouse, region: str | None) -> dict[str, Any]:
    sql = _STOCK_RISK.format(
        mart=marts.qualified("mart_report_stock_risk"),
        region_where="where region = ?" if region else "",
        listed=LISTED,
    )
    rows = _rows(marts, sql, [region] if region else [])
    listed = [
        {k: v for k, v in r.items() if k not in ("products_at_risk", "as_of_date")} for r in rows
    ]
    return {
        "products_at_risk": rows[0]["products_at_risk"] if rows else 0,
        "as_of": rows[0]["as_of_date"] if rows else None,
        "products": listed,
    }


def _data_health(marts: Warehouse) -> dict[str, Any]:
    latest = _rows(marts, _HEALTH.format(mart=marts.qualified("mart_pipeline_health")))
    if not latest:
        return {"status": "unknown", "failed_checks": []}
    failed = _rows(
        marts, _FAILED_CHECKS.format(mart=marts.qualified("mart_data_quality"), listed=LISTED)
    )
    return {**latest[0], "failed_checks": failed}


def _rows(marts: Warehouse, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The result's rows as dicts of JSON values (dates and timestamps as ISO text)."""
    out = []
    for row in marts.query(sql, params or []).to_pylist():
        out.append({k: _json_value(v) for k, v in row.items()})
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
