"""The same dashboards on the stack profile: Superset reads the marts Trino publishes on
the object store (MinIO), started by the test as local processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.lake.catalog import trino_connection
from lakehouse.quality.gate import build_audit_publish
from lakehouse.settings import Settings
from lakehouse.supervisors.superset import SupersetServer
from tests.superset.attacks import (
    READ,
    Judge,
    chart_queries,
    send,
    send_chart_queries,
    send_sql_lab,
    trino_attacks,
)
from tests.superset.conftest import plant_model_outputs, published_lake
from tests.support.stack import lake_ports, lake_services
from tests.support.superset import (
    browser_page,
    client,
    compare_charts,
    dashboards,
    open_dashboard,
)

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("superset-stack")]


@pytest.fixture(scope="module")
def stack_superset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupersetServer]:
    settings = published_lake(
        tmp_path_factory.mktemp("superset-stack") / "data", profile="stack", **lake_ports()
    )
    with lake_services(settings):
        ingest(settings, source=FileSource(settings.changes_path))  # files, not Kafka
        plant_model_outputs(settings)
        build_audit_publish(settings)
        superset = SupersetServer(settings)
        try:
            superset.start()
            yield superset
        finally:
            superset.stop()


def _trino(settings: Settings, sql: str, *, user: str | None = None) -> list[tuple[Any, ...]]:
    with trino_connection(settings, user=user) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]


def test_the_dashboards_render_and_match_trino(stack_superset: SupersetServer) -> None:
    server = stack_superset
    s = server.settings
    database = client(server).get("/api/v1/database/").json()["result"]
    assert [d["backend"] for d in database] == ["trino"]

    with browser_page(server, s.superset_admin_user, s.superset_admin_secret()) as page:
        for dashboard in dashboards():
            state = open_dashboard(page, server, dashboard["slug"], len(dashboard["charts"]))
            charts = state["charts"]
            assert len(charts) == len(dashboard["charts"]), (dashboard["slug"], charts)
            bad = [c for c in charts if c["loading"] or c["error"] or c["noResults"]]
            assert not bad, (dashboard["slug"], bad)

    differences = compare_charts(client(server), lambda sql: _trino(s, sql))
    assert not differences, differences

    analyst = client(server, "north_analyst")
    charts = {c["slice_name"]: c["id"] for c in analyst.charts()}
    exported = analyst.chart_data(charts["Revenue by region"], format="csv")
    assert [line.split(",")[0] for line in exported.lstrip("\ufeff").splitlines()] == [
        "region",
        "north",
    ]


def test_trino_enforces_the_region_whatever_the_statement(stack_superset: SupersetServer) -> None:
    """The attack corpus as the region's user: through Superset (SQL Lab runs as that user
    in Trino) and straight to Trino (the engine alone, without Superset's checks). Nothing
    of another region, no table outside the region's marts, nothing written or changed.
    The pipeline's user running the same corpus reads everything (the positive control)."""
    server = stack_superset
    s = server.settings
    region = "north"
    user = s.region_user(region)
    regions = {row[0] for row in _trino(s, "select distinct region from marts.dim_client")}
    assert region in regions and len(regions) >= 4
    secrets = {s.superset_key(), s.superset_admin_secret(), s.s3_secret()}
    attacks = trino_attacks(s.trino_catalog)
    assert len(attacks) >= 40

    control = Judge(region, regions - {region}, secrets)
    for attack in attacks:
        if attack.kind == READ:
            with contextlib.suppress(Exception):
                control.rows(attack.label, _trino(s, attack.sql))
    leaked = {leak.split(":")[0] for leak in control.leaks}
    assert {"dim_client", "silver", "or true"} <= leaked, leaked

    judge = Judge(region, regions - {region}, secrets)

    # the engine alone: Trino as the region's user
    def as_user(sql: str) -> list[tuple[Any, ...]] | None:
        try:
            return _trino(s, sql, user=user)
        except Exception:
            return None

    refused = send(as_user, attacks, judge, "Trino")
    ran = len(attacks) - refused
    # through Superset: SQL Lab and ad hoc chart SQL, impersonated in Trino
    analyst, admin = client(server, user), client(server)
    through = send_sql_lab(analyst, admin.database_id("lakehouse"), attacks, judge, "SQL Lab")
    through += send_chart_queries(analyst, admin, "mart_sales_lines", judge)
    ran += len(attacks) + len(chart_queries()) - through
    refused += through
    assert not judge.leaks, judge.leaks
    assert ran >= 10 and refused >= 40, (ran, refused)
    # the region's own rows do come back, from the engine itself
    own = _trino(s, "select distinct region from marts.mart_sales_lines", user=user)
    assert own == [(region,)]


# what a user Trino has no rule for must not reach: the lake below the published marts,
# the build area, the engine's own tables, and every write or setting
OUTSIDE_THE_MARTS = {
    "silver",
    "bronze",
    "build area",
    "build area staging",
    "system queries",
    "system nodes",
    "execute immediate",
}


def test_any_other_trino_user_reads_the_published_marts_only(
    stack_superset: SupersetServer,
) -> None:
    """A name Trino has no rule for (an analyst's own client) reads the published marts,
    every region, and nothing else: the same corpus, judged for that user."""
    s = stack_superset.settings
    user = "mallory"

    def as_user(sql: str) -> list[tuple[Any, ...]] | None:
        try:
            return _trino(s, sql, user=user)
        except Exception:
            return None

    attacks = trino_attacks(s.trino_catalog)
    assert {a.label for a in attacks} >= OUTSIDE_THE_MARTS
    reached = [
        a.label
        for a in attacks
        if (a.kind != READ or a.label in OUTSIDE_THE_MARTS) and as_user(a.sql) is not None
    ]
    assert not reached, reached
    regions = as_user(f"select distinct region from {s.trino_catalog}.marts.mart_sales_lines")
    assert regions is not None and len(regions) >= 4  # the published marts, unfiltered
    schemas = as_user(
        f"select distinct table_schema from {s.trino_catalog}.information_schema.tables"
    )
    assert schemas is not None and {row[0] for row in schemas} <= {"marts", "information_schema"}
    # the positive control: the pipeline's user does reach what this user cannot
    assert _trino(s, f"select count(*) from {s.trino_catalog}.silver.client")[0][0] > 0
