"""The dashboards on the local profile: Superset reads the published DuckDB marts.

A real headless Chromium logs in and opens every dashboard; every chart's numbers from the
chart-data API equal the same question asked of the marts in SQL; the region role sees
only its region in charts, SQL Lab and CSV exports; dashboards keep answering while the
pipeline publishes."""

from __future__ import annotations

import contextlib
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

from lakehouse.contracts.marts import region_marts
from lakehouse.exceptions import ServiceError
from lakehouse.supervisors.superset import SupersetServer
from tests.superset.attacks import (
    READ,
    Judge,
    chart_queries,
    duckdb_attacks,
    send_chart_queries,
    send_sql_lab,
)
from tests.support.superset import (
    CHART_SQL,
    DASHBOARDS,
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
REGION_DATASETS = (
    "mart_sales_lines",
    "mart_client_rfm",
    "mart_client_cohorts",
    "mart_client_recommendations",
)


def _marts(server: SupersetServer, sql: str) -> list[tuple[Any, ...]]:
    path = str(server.settings.published_warehouse)
    with duckdb.connect(path, read_only=True) as con:
        return [tuple(row) for row in con.execute(sql).fetchall()]


def test_every_dashboard_renders_every_chart_with_data(local_superset: SupersetServer) -> None:
    server = local_superset
    s = server.settings
    shown = dashboards()
    assert {d["title"] for d in shown} == DASHBOARDS
    with browser_page(server, s.superset_admin_user, s.superset_admin_secret()) as page:
        for dashboard in shown:
            state = open_dashboard(page, server, dashboard["slug"], len(dashboard["charts"]))
            charts = state["charts"]
            assert state["screenshot"].stat().st_size > 10_000
            assert len(charts) == len(dashboard["charts"]), (dashboard["slug"], charts)
            bad = [c for c in charts if c["loading"] or c["error"] or c["noResults"]]
            assert not bad, (dashboard["slug"], bad)
            assert all(c["drawn"] for c in charts), (dashboard["slug"], charts)
            if dashboard["slug"] == "sales-overview":  # the weekly reports' link
                assert any("reports" in text for text in state["markdown"]), state["markdown"]


def test_every_chart_shows_the_numbers_of_the_marts(local_superset: SupersetServer) -> None:
    admin = client(local_superset)
    differences = compare_charts(admin, lambda sql: _marts(local_superset, sql))
    assert not differences, differences
    assert len(admin.charts()) == len(CHART_SQL) == 47


def test_the_region_role_sees_only_its_region(local_superset: SupersetServer) -> None:
    server = local_superset
    analyst = client(server, f"{REGION}_analyst")
    charts = {c["slice_name"]: c for c in analyst.charts()}
    # the charts of the region datasets, nothing else (stock, data health and the demand
    # forecast carry no region: they are not theirs)
    assert "Revenue by region" in charts and "Cohort retention" in charts
    assert "Stock on hand today" not in charts and "Dead letters" not in charts
    forecast = next(d["charts"] for d in dashboards() if d["title"] == "Demand forecast")
    assert not set(forecast) & set(charts), set(forecast) & set(charts)
    # asked by id, the forecast charts' data and datasets are refused, not filtered
    everything = {c["slice_name"]: c["id"] for c in client(server).charts()}
    for name in forecast:
        with pytest.raises(ServiceError, match="HTTP 404"):
            analyst.chart_data(everything[name])
    # the propositions of the region's clients are theirs; coverage of the whole catalogue
    # and the backtest's metrics (no region) are not, and are refused when asked by id
    assert "Propositions for a client" in charts and "Top proposed products" in charts
    for name in ("Catalogue coverage", "Backtest MAP@10 by segment"):
        assert name not in charts
        with pytest.raises(ServiceError, match="HTTP 404"):
            analyst.chart_data(everything[name])
    seen = {d["table_name"] for d in analyst.get("/api/v1/dataset/").json()["result"]}
    assert seen == set(REGION_DATASETS), seen
    boards = {d["dashboard_title"] for d in analyst.get("/api/v1/dashboard/").json()["result"]}
    assert boards == {"Sales overview", "Clients", "Propositions"}, boards

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

    # SQL Lab: on the region's own database, which holds only its rows; SQL on the
    # database of every region is refused (Superset's parser is not the boundary)
    ran = analyst.execute_sql(f"lakehouse_{REGION}", "select distinct region from marts.dim_client")
    assert ran.status_code == 200, ran.text
    assert [row["region"] for row in ran.json()["data"]] == [REGION]
    refused = analyst.execute_sql(
        client(server).database_id("lakehouse"),
        "select distinct region from marts.mart_sales_lines",
    )
    assert refused.status_code >= 400
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


def test_no_statement_reads_past_the_region(local_superset: SupersetServer) -> None:
    """The attack corpus through SQL Lab on every database, and ad hoc SQL through the
    chart-data API, as the region's user: nothing of another region, no file, no secret;
    writes, attaches, loads and settings refused. The same corpus on an unprotected
    connection leaks (the positive control)."""
    server = local_superset
    s = server.settings
    admin, analyst = client(server), client(server, f"{REGION}_analyst")
    regions = {row[0] for row in _marts(server, "select distinct region from marts.dim_client")}
    assert REGION in regions and len(regions) >= 4
    secret_file = s.root / "secrets" / "superset.key"
    secrets = {s.superset_key(), s.superset_admin_secret(), "root:x:0:0"}
    lake_file = next((s.root / "lake" / "silver" / "client").glob("*.parquet"))
    attacks = duckdb_attacks(
        secret=str(secret_file), lake_file=str(lake_file), other_file=str(s.published_warehouse)
    )
    assert len(attacks) >= 40

    # the positive control: an unprotected connection to the file of every region leaks
    control = Judge(REGION, regions - {REGION}, secrets)
    with duckdb.connect(str(s.published_warehouse), read_only=True) as con:
        for attack in attacks:
            if attack.kind == READ:
                with contextlib.suppress(duckdb.Error):
                    control.rows(attack.label, con.execute(attack.sql).fetchall())
    leaked = {leak.split(":")[0] for leak in control.leaks}
    assert {"dim_client", "query as a string", "read_text", "union"} <= leaked, leaked

    judge = Judge(REGION, regions - {REGION}, secrets)
    databases = {
        "lakehouse": admin.database_id("lakehouse"),
        f"lakehouse_{REGION}": admin.database_id(f"lakehouse_{REGION}"),
    }
    seen = {d["database_name"] for d in analyst.get("/api/v1/database/").json()["result"]}
    assert seen <= set(databases), seen
    refused = sum(
        send_sql_lab(analyst, database_id, attacks, judge, name)
        for name, database_id in databases.items()
    )
    refused += send_chart_queries(analyst, admin, "mart_sales_lines", judge)
    sent = 2 * len(attacks) + len(chart_queries())
    assert not judge.leaks, judge.leaks
    assert sent - refused >= 10 and refused >= 40, (sent, refused)
    assert judge.checked >= 10
    # the region's file holds the marts Trino filters on the stack, and only its rows
    with duckdb.connect(str(s.published_region(REGION)), read_only=True) as con:
        tables = {
            t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()
        }
        assert tables == set(region_marts())
        for table in tables:
            rows = con.execute(f"select distinct region from marts.{table}").fetchall()
            assert rows == [(REGION,)], table
    # what ran on the region's database read its own rows
    own = analyst.execute_sql(databases[f"lakehouse_{REGION}"], attacks[7].sql)
    assert attacks[7].label == "query as a string"
    assert [row["region"] for row in own.json()["data"]] == [REGION]
