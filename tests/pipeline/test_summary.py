"""The demo's last lines: where to look, only at what the run made."""

from __future__ import annotations

from pathlib import Path

import duckdb

from lakehouse.pipeline.summary import where_to_look
from lakehouse.settings import load_settings
from lakehouse.transform.docs import docs_sites


def test_only_the_places_the_run_made(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    before = dict(where_to_look(settings))
    assert not any("marts" in what or "docs" in what or "reports" in what for what in before)
    assert before["tables, freshness, dead letters"] == "lakehouse status"

    settings.published_warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.published_warehouse)) as con:
        con.execute("create schema marts; create table marts.dim_date as select 1 as date_key")
    for page in docs_sites(settings).values():
        page.parent.mkdir(parents=True, exist_ok=True)
        page.touch()
    for week in ("2025-04-21", "2025-04-28"):
        report = settings.reports_dir / "all" / week / "report.html"
        report.parent.mkdir(parents=True)
        report.touch()
    after = dict(where_to_look(settings, dashboards="http://127.0.0.1:8088"))

    assert after["published marts"] == f"{settings.published_warehouse}, schema marts"
    assert after["dashboards (Superset)"] == "http://127.0.0.1:8088"
    assert after["models, lineage and tests (dbt docs)"].startswith("file://")
    assert after["data quality (GX Data Docs)"].endswith("gx/index.html")
    assert after["weekly insight reports (HTML, PDF)"].endswith(
        "/reports/all/2025-04-28/report.html"
    )
