"""The same dbt project on both engines: one change log landed twice, into a local lake
built by DuckDB and into the object store built by Trino (`dbt build --target trino`),
gives the same marts (the forecast and propositions marts too, from one planted scoring
run each) and feature tables, row for row over all columns.

One loss is Trino's and documented: its Delta Lake connector reads a Delta timestamp
with time zone (the lake's ``timestamptz`` columns) at millisecond precision, rounding
half up; mart timestamps derived from those are compared at milliseconds."""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pytest

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.catalog import trino_connection
from lakehouse.reports.facts import compute_facts, regions, report_week
from lakehouse.settings import Settings, load_settings
from lakehouse.transform.dbt import run_dbt
from lakehouse.warehouse import connect
from tests.support import propositions
from tests.support.forecasts import plant
from tests.support.stack import lake_ports, lake_services

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("trino")]
SMALL = GenerateParams(clients=60, products=20, days=90, snapshot_day=10)
PII_KEY = "cross-engine-test-key-0123456789abcdef"  # the same tokens in both lakes
SCHEMAS = ("marts", "features")
# marts filled by the planted scoring runs: compared only if they hold rows
PLANTED = (
    "mart_demand_forecast",
    "mart_client_recommendations",
    "mart_recommendation_backtest",
    "mart_recommendation_metrics",
)
SCORED_AT = dt.datetime(
    2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC
)  # dbt's +schema of the marts and of the feature tables


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Settings]]:
    """(local, stack): the same generated change log landed and built on each engine."""
    base = tmp_path_factory.mktemp("cross-engine")
    local = load_settings(data_dir=base / "local", profile="local", pii_key=PII_KEY)
    stack = load_settings(
        data_dir=base / "stack",
        profile="stack",
        pii_key=PII_KEY,
        **lake_ports(),
    )
    generate(local, SMALL)
    ingest(local, source=FileSource(local.changes_path))
    # the same scoring runs in both lakes, so the model marts have rows to compare
    plant(local, "run-1", "1", scale=3.0, now=SCORED_AT)
    propositions.plant(local, "run-1", "1", now=SCORED_AT)
    assert run_dbt(local, ["build"]).succeeded
    with lake_services(stack):
        ingest(stack, source=FileSource(local.changes_path))  # the very same files
        plant(stack, "run-1", "1", scale=3.0, now=SCORED_AT)
        propositions.plant(stack, "run-1", "1", now=SCORED_AT)
        trino_build = run_dbt(stack, ["build"])
        assert trino_build.succeeded
        assert trino_build.nodes.get("pass", 0) > 250  # models and tests, as on DuckDB
        yield local, stack


@pytest.mark.parametrize("layer", SCHEMAS)
def test_every_mart_is_identical_on_duckdb_and_trino(
    built: tuple[Settings, Settings], layer: str
) -> None:
    local, stack = built
    with duckdb.connect(str(local.warehouse), read_only=True) as con:
        schema = f"main_{layer}"
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "order by 1",
                [schema],
            ).fetchall()
        ]
        assert len(tables) >= (10 if layer == "marts" else 4)
        expected = {}
        for table in tables:
            columns = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            rows = con.execute(f"select {', '.join(columns)} from {schema}.{table}").fetchall()
            expected[table] = (columns, _multiset(rows))
    if layer == "marts":
        assert all(expected[mart][1] for mart in PLANTED), "a planted mart is empty"
    with _trino(stack) as cursor:
        cursor.execute(f"show tables from analytics_{layer}")
        assert sorted(r[0] for r in cursor.fetchall()) == tables
        for table, (columns, rows) in expected.items():
            cursor.execute(f"select {', '.join(columns)} from analytics_{layer}.{table}")
            got = _multiset(cursor.fetchall())
            assert sum(got.values()) == sum(rows.values()), table
            missing, extra = rows - got, got - rows
            assert not missing and not extra, (
                f"{table}: {len(missing)} rows differ, e.g. DuckDB {next(iter(missing))} "
                f"vs Trino {next(iter(extra))}"
            )


def test_marts_are_delta_tables_on_the_object_store(built: tuple[Settings, Settings]) -> None:
    """dbt on Trino writes Delta tables (no rename anywhere), under the lake's bucket."""
    _, stack = built
    with _trino(stack) as cursor:
        cursor.execute('select "$path" from analytics_marts.fct_sale limit 1')
        (path,) = cursor.fetchone()
        assert path.startswith(f"s3://{stack.s3_bucket}/"), path
        cursor.execute("show create table analytics_marts.fct_sale")
        assert "location = 's3://" in cursor.fetchone()[0]


def test_the_reports_facts_are_the_same_on_both_engines(
    built: tuple[Settings, Settings],
) -> None:
    """The insight reports' SQL (lakehouse.reports.facts) over each engine's marts: the
    same week, regions and facts, number for number."""
    per_engine = []
    for settings in built:
        with connect(settings, "build") as marts:
            week = report_week(marts)
            scopes = ["all", *regions(marts)]
            per_engine.append([_rounded(compute_facts(marts, s, week)) for s in scopes])
    local, stack = per_engine
    assert len(local) >= 3 and local[0]["totals"]["revenue"] > 0
    assert local == stack


def _rounded(node: Any) -> Any:
    """Floats to 6 decimals (the facts are rounded to 2: only float noise differs)."""
    if isinstance(node, float):
        return round(node, 6) + 0.0
    if isinstance(node, dict):
        return {k: _rounded(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rounded(v) for v in node]
    return node


@contextmanager
def _trino(settings: Settings) -> Iterator[Any]:
    with trino_connection(settings) as connection:
        yield connection.cursor()


def _multiset(rows: list[Any]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(_normal(v) for v in row) for row in rows)


def _normal(value: object) -> str:
    """One text per value, engine-neutral: decimals without trailing zeros, floats to 9
    digits (a float-noise -1e-15 rounds to -0.0, equal to 0.0 but printed apart: adding
    0.0 makes it 0.0), timestamps (naive UTC) at milliseconds rounded half up."""
    if isinstance(value, float):
        return repr(round(value, 9) + 0.0)
    if isinstance(value, decimal.Decimal):
        return str(value.normalize())
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=None)
        millis = (value.microsecond + 500) // 1000
        rounded = value.replace(microsecond=0) + dt.timedelta(milliseconds=millis)
        return rounded.isoformat(timespec="milliseconds")
    return repr(value)
