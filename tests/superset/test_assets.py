"""The committed assets hang together, and each profile gets its own connection to them;
no Superset needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from lakehouse.settings import load_settings
from lakehouse.supervisors.superset import ASSETS_DIR, SupersetServer
from tests.support.ports import free_port
from tests.support.superset import CHART_SQL, DASHBOARDS, dashboards

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def _docs(kind: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((ASSETS_DIR / kind).rglob("*.yaml"))]


def test_every_reference_in_the_assets_resolves() -> None:
    databases = {d["uuid"] for d in _docs("databases")}
    datasets = {d["uuid"]: d for d in _docs("datasets")}
    charts = {c["uuid"]: c for c in _docs("charts")}
    assert len(databases) == 1
    assert all(d["database_uuid"] in databases for d in datasets.values())
    assert all(d["schema"] == "marts" for d in datasets.values())
    assert all(c["dataset_uuid"] in datasets for c in charts.values())
    shown = dashboards()
    assert {d["title"] for d in shown} == DASHBOARDS
    on_dashboards = [name for d in shown for name in d["charts"]]
    assert sorted(on_dashboards) == sorted(c["slice_name"] for c in charts.values())
    assert set(CHART_SQL) == {c["slice_name"] for c in charts.values()}
    # every chart has the query the chart-data API runs for it
    assert all(c["query_context"] for c in charts.values())


def test_each_profile_gets_its_own_connection(tmp_path: Path) -> None:
    committed = _docs("databases")[0]
    assert committed["sqlalchemy_uri"] == "duckdb:///published/lakehouse.duckdb"
    assert "engine_params" not in (committed.get("extra") or {})

    local = SupersetServer(load_settings(data_dir=tmp_path / "local"))
    uri, extra = local.database_uri()
    assert uri == f"duckdb:///{local.settings.published_warehouse}"
    # read-only, and locked: no other file, no extension, no setting changed by a statement
    assert extra["engine_params"]["connect_args"] == {
        "read_only": True,
        "config": {"enable_external_access": False, "lock_configuration": True},
    }
    stack = SupersetServer(load_settings(data_dir=tmp_path / "stack", profile="stack"))
    uri, extra = stack.database_uri()
    assert uri == "trino://lakehouse@127.0.0.1:58080/lake"
    assert "connect_args" not in extra["engine_params"]
    assert "REQUESTS_CA_BUNDLE" not in stack._env()


def test_a_trino_with_passwords_gets_https_and_the_password(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, profile="stack", trino_authentication="password")
    server = SupersetServer(settings)
    uri, extra = server.database_uri()
    assert uri == f"trino://lakehouse:{settings.trino_secret()}@127.0.0.1:58080/lake"
    certificate = str(settings.trino_certificate)
    assert extra["engine_params"]["connect_args"] == {"http_scheme": "https", "verify": certificate}
    # requests would verify against this variable's authorities instead of `verify`
    assert server._env()["REQUESTS_CA_BUNDLE"] == certificate


def test_the_config_holds_a_secret_of_its_own(tmp_path: Path) -> None:
    first = SupersetServer(load_settings(data_dir=tmp_path / "a"))
    second = SupersetServer(load_settings(data_dir=tmp_path / "b"))
    for server in (first, second):
        server.write_config()
        assert server.config_path.stat().st_mode & 0o077 == 0
    keys = [s.settings.superset_key() for s in (first, second)]
    assert keys[0] != keys[1] and len(keys[0]) >= 32
    assert repr(keys[0]) in first.config_path.read_text()
    passwords = [s.settings.superset_admin_secret() for s in (first, second)]
    assert passwords[0] != passwords[1]
    given = load_settings(data_dir=tmp_path / "c", superset_admin_password="chosen-one")
    assert given.superset_admin_secret() == "chosen-one"


def test_export_without_a_running_superset_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [LAKEHOUSE, "superset", "export", "--data-dir", str(tmp_path)],
        env={**os.environ, "LAKEHOUSE_SUPERSET_PORT": str(free_port())},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "superset up" in lines[0], run.stderr


def test_the_data_health_dashboard_shows_the_freshness_slo() -> None:
    """A row of charts on the SLO mart, whose dataset has exactly the mart's contract
    columns (a renamed column would break the charts only at render time)."""
    from lakehouse.settings import DBT_PROJECT_DIR

    datasets = {d["table_name"]: d for d in _docs("datasets")}
    slo = datasets["mart_freshness_slo"]
    models = yaml.safe_load(
        (DBT_PROJECT_DIR / "models" / "marts" / "quality" / "_quality__models.yml").read_text()
    )
    contract = next(m for m in models["models"] if m["name"] == "mart_freshness_slo")
    assert [c["column_name"] for c in slo["columns"]] == [c["name"] for c in contract["columns"]]
    on_slo = {c["slice_name"] for c in _docs("charts") if c["dataset_uuid"] == slo["uuid"]}
    assert len(on_slo) == 3
    health = next(d for d in dashboards() if d["title"] == "Data health")
    assert on_slo <= set(health["charts"])
