"""The dashboards on the local profile: Superset reads the published DuckDB marts.

A real headless Chromium logs in and opens every dashboard; every chart's numbers from the
chart-data API equal the same question asked of the marts in SQL; the region role sees
only its region in charts, SQL Lab and CSV exports; dashboards keep answering while the
pipeline publishes."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse.services.superset import SupersetServer
from tests.support.superset import (
    CHART_SQL,
    api_rows,
    browser_page,
    client,
    compare_charts,
    dashboards,
    normalise,
    open_dashboard,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("superset")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
REGION = "north"
REGION_DATASETS = ("mart_sales_lines", "mart_client_rfm", "mart_client_cohorts")


def _marts(server: SupersetServer, sql: str) -> list[tuple[Any, ...]]:
    path = str(server.settings.published_warehouse)
    with duckdb.connect(path, read_only=True) as con:
        return [tuple(row) for row in con.execute(sql).fetchall()]


def test_every_dashboard_renders_every_chart_with_data(local_superset: SupersetServer) -> None:
    server = local_superset
    s = server.settings
    shown = dashboards()
    assert {d["title"] for d in shown} == {"Sales overview", "Inventory", "Clients", "Data health"}
    with browser_page(server, s.superset_admin_user, s.superset_admin_secret()) as page:
        for dashboard in shown:
            state = open_dashboard(page, server, dashboard["slug"], len(dashboard["charts"]))
            charts = state["charts"]
            assert state["screenshot"].stat().st_size > 10_000
            assert len(charts) == len(dashboard["charts"]), (dashboard["slug"], charts)
            bad = [c for c in charts if c["loading"] or c["error"] or c["noResults"]]
            assert not bad, (dashboard["slug"], bad)
            assert all(c["drawn"] for c in charts), (dashboard["slug"], charts)


def test_every_chart_shows_the_numbers_of_the_marts(local_superset: SupersetServer) -> None:
    admin = client(local_superset)
    differences = compare_charts(admin, lambda sql: _marts(local_superset, sql))
    assert not differences, differences
    assert len(admin.charts()) == len(CHART_SQL) == 30


def test_the_region_role_sees_only_its_region(local_superset: SupersetServer) -> None:
    server = local_superset
    analyst = client(server, f"{REGION}_analyst")
    charts = {c["slice_name"]: c for c in analyst.charts()}
    # the charts of the region datasets, nothing else (stock and data health are not theirs)
    assert "Revenue by region" in charts and "Cohort retention" in charts
    assert "Stock on hand today" not in charts and "Dead letters" not in charts

    by_region = api_rows(analyst.chart_data(charts["Revenue by region"]["id"]))
    assert [row[0] for row in by_region] == [REGION]
    # every chart equals its SQL over the region's rows only
    for name, chart in charts.items():
        sql = _only_region(CHART_SQL[name])
        assert api_rows(analyst.chart_data(chart["id"])) == normalise(_marts(server, sql)), name
    everyone = _marts(server, CHART_SQL["Revenue"])[0][0]
    theirs = api_rows(analyst.chart_data(charts["Revenue"]["id"]))[0][0]
    assert 0 < theirs < float(everyone)

    # CSV export: what the chart's "Download as CSV" gives
    exported = analyst.chart_data(charts["Top products"]["id"], format="csv")
    rows = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
    want = _marts(server, _only_region(CHART_SQL["Top products"]))
    assert [r["product_name"] for r in rows] == [w[0] for w in want]
    exported = analyst.chart_data(charts["Revenue by region"]["id"], format="csv")
    assert {r["region"] for r in csv.DictReader(io.StringIO(exported.lstrip("\ufeff")))} == {REGION}

    # SQL Lab: the row-level filter applies to their queries; other tables are refused
    ran = analyst.execute_sql("lakehouse", "select distinct region from marts.mart_sales_lines")
    assert ran.status_code == 200, ran.text
    assert [row["region"] for row in ran.json()["data"]] == [REGION]
    refused = analyst.execute_sql("lakehouse", "select distinct region from marts.dim_client")
    assert refused.status_code >= 400
    assert "dim_client" in refused.text
    admin = client(server).execute_sql(
        "lakehouse", "select distinct region from marts.mart_sales_lines"
    )
    assert len(admin.json()["data"]) == 5


def _only_region(sql: str) -> str:
    """The chart's SQL over the region's rows: each region dataset filtered first."""
    for table in REGION_DATASETS:
        sql = re.sub(
            rf"\bmarts\.{table}\b",
            f"(select * from marts.{table} where region = '{REGION}') as {table}",
            sql,
        )
    return sql


def test_dashboards_keep_answering_while_the_pipeline_publishes(
    local_superset: SupersetServer,
) -> None:
    server = local_superset
    admin = client(server)
    charts = {c["slice_name"]: c["id"] for c in admin.charts()}
    before = _marts(server, "select distinct run_id from marts._publication")
    revenue = api_rows(admin.chart_data(charts["Revenue"]))
    checks = charts["Checks run in the latest run"]
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        reader = client(server)
        while not stop.is_set():
            try:
                seen.append(api_rows(reader.chart_data(charts["Revenue"])))
                reader.chart_data(checks)
            except Exception as exc:  # a lock error, a missing table: any is a failure
                errors.append(repr(exc))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        build = subprocess.run(
            [LAKEHOUSE, "build", "--data-dir", str(server.settings.root)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        stop.set()
        thread.join(60)
    assert build.returncode == 0, build.stderr[-2000:]
    after = _marts(server, "select distinct run_id from marts._publication")
    assert after != before  # a new publication was served while the readers read
    assert not errors, errors[:3]
    assert len(seen) >= 3
    assert all(rows == revenue for rows in seen)  # the same data, whole, every time
