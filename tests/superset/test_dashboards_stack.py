"""The same dashboards on the stack profile: Superset reads the marts Trino publishes on
the object store (MinIO), started by the test as local processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.lake.catalog import trino_connection
from lakehouse.quality.gate import build_audit_publish
from lakehouse.services.superset import SupersetServer
from lakehouse.settings import Settings
from tests.superset.conftest import published_lake
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
        build_audit_publish(settings)
        superset = SupersetServer(settings)
        try:
            superset.start()
            yield superset
        finally:
            superset.stop()


def _trino(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with trino_connection(settings) as connection:
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
