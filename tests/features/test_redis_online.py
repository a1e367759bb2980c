"""The `stack` profile's online store, Redis (``feature_repo/feature_store.stack.yaml``),
on a real ``redis-server``: Feast applied and materialized with the stack settings serves
the same values as the `local` profile's SQLite store for the same lake, and they are the
published feature tables' latest week. Redis is shown to hold them: emptied, it serves
nothing while SQLite still does; and Feast's own CLI applies and materializes the stack
yaml with the environment ``feature_repo/README.md`` names.

The lake is built once on `local` (DuckDB): the stack settings are a copy with the
profile and Redis's port changed, and while they are used the warehouse port reads the
same published DuckDB files (the stack's Trino would serve the same tables, as
tests/transform/test_cross_engine.py shows, but costs minutes to start here)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

import lakehouse.warehouse
from lakehouse import features
from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.gate import build_audit_publish
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from lakehouse.warehouse.duckdb_files import DuckDBWarehouse
from tests.quality.gate_support import lake_settings
from tests.support.ports import free_port
from tests.support.redis import redis_client, redis_server

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("features")]
# a few months: the online store holds each entity's latest row, no lag needs a year
SMALL = GenerateParams(clients=30, products=10, days=120, snapshot_day=5)
# each feature view: its table and its entity keys (feature_repo/feature_definitions.py)
VIEW_KEYS = {
    "feat_product_weekly": ("product_id",),
    "feat_product_warehouse_weekly": ("product_id", "warehouse_id"),
    "feat_promotion_calendar": ("category", "week_key"),
    "feat_client": ("client_id",),
}
DEMAND = ("feat_product_weekly", "feat_promotion_calendar")
REPLENISHMENT = ("feat_product_warehouse_weekly",)
VIEWS = {"product_demand", "product_warehouse_stock", "promotion_calendar", "client_activity"}


@dataclass
class Served:
    """The lake, read on both profiles: the published tables and the window loaded."""

    local: Settings
    stack: Settings
    published: dict[str, pd.DataFrame] = field(repr=False)
    start: datetime
    end: datetime


@contextmanager
def _published_through_duckdb() -> Iterator[None]:
    """The warehouse port on the published DuckDB files whatever the profile: the stack
    settings' export reads the lake built on `local` (no Trino here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lakehouse.warehouse, "engine", lambda _settings: DuckDBWarehouse)
        yield


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A lake published on `local` and materialized into SQLite (local) and, with the
    stack settings, into the stack's Redis on a free port."""
    local = lake_settings(tmp_path_factory.mktemp("redis-online") / "data")
    generate(local, SMALL)
    ingest(local)
    report = build_audit_publish(local)
    assert report.outcome == "published", [c.check for c in report.checks if not c.passed]
    with connect(local, section="features") as published_area:
        published = {t: published_area.read_mart(t).to_pandas() for t in VIEW_KEYS}
    stamps = pd.concat([frame["event_timestamp"] for frame in published.values()])
    start = stamps.min().to_pydatetime()
    end = stamps.max().to_pydatetime() + timedelta(days=1)

    features.apply(local)
    features.materialize(local, end=end, start=start)
    stack = local.model_copy(update={"profile": "stack", "redis_port": free_port()})
    with redis_server(stack), _published_through_duckdb():
        assert features.export(stack).keys() == VIEW_KEYS.keys()
        features.apply(stack)
        features.materialize(stack, end=end, start=start)
        yield Served(local, stack, published, start, end)


def _latest(frame: pd.DataFrame, keys: tuple[str, ...], end: datetime) -> pd.DataFrame:
    """Each entity's latest row before ``end``: what materialize loads online."""
    known = frame[frame["event_timestamp"] < end]
    return known.sort_values("event_timestamp").groupby(list(keys), as_index=False).last()


def _entity_rows(served: Served) -> dict[str, list[dict[str, Any]]]:
    """A few products of the latest week, as each feature service's entity rows: one
    warehouse each for replenishment_v1; for demand_forecast_v1 the product's category and
    a week its category has promotions announced for (else the week after the latest)."""
    weekly = served.published["feat_product_weekly"]
    latest_week = weekly["week_start_date"].max()
    products = weekly[weekly["week_start_date"] == latest_week].sort_values("product_id")
    stock = served.published["feat_product_warehouse_weekly"]
    calendar = served.published["feat_promotion_calendar"]
    after = int((latest_week + timedelta(weeks=1)).strftime("%Y%m%d"))
    replenishment, demand = [], []
    for row in products.head(4).itertuples(index=False):
        product = int(row.product_id)
        warehouses = sorted(stock.loc[stock["product_id"] == product, "warehouse_id"])
        replenishment.append(
            {"product_id": product, "warehouse_id": warehouses[product % len(warehouses)]}
        )
        weeks = sorted(calendar.loc[calendar["category"] == row.category, "week_key"])
        week = int(weeks[-1]) if weeks and product % 2 else after
        demand.append({"product_id": product, "category": row.category, "week_key": week})
    return {"replenishment_v1": replenishment, "demand_forecast_v1": demand}


def _same(a: Any, b: Any) -> bool:
    """Equal values, None and NaN both meaning missing; floats to a relative 1e-9."""
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return bool(a == b)


def _expected(served: Served, service: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The published tables' values for ``rows``: each view's latest row per entity."""
    tables = DEMAND if service == "demand_forecast_v1" else REPLENISHMENT
    expected: dict[str, list[Any]] = {}
    for table in tables:
        keys = VIEW_KEYS[table]
        latest = _latest(served.published[table], keys, served.end).set_index(list(keys))
        columns = [c for c in latest.columns if c not in {"event_timestamp", "week_start_date"}]
        for column in columns:
            values: list[Any] = []
            for row in rows:
                at = tuple(row[k] for k in keys)
                at_key = at if len(at) > 1 else at[0]
                value: Any = latest.at[at_key, column] if at_key in latest.index else None
                values.append(value.item() if hasattr(value, "item") else value)  # numpy's
            expected[column] = values
    return expected


def _online(settings: Settings, service: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return features.online_features(settings, rows, service)


def test_redis_serves_what_sqlite_serves_the_published_latest_week(served: Served) -> None:
    for service, rows in _entity_rows(served).items():
        from_redis = _online(served.stack, service, rows)
        from_sqlite = _online(served.local, service, rows)
        assert from_redis.keys() == from_sqlite.keys()
        for name, values in from_sqlite.items():
            assert all(map(_same, from_redis[name], values)), (service, name)
        expected = _expected(served, service, rows)
        served_names = set(from_redis) - {k for row in rows for k in row}
        assert served_names and served_names <= set(expected), served_names - set(expected)
        for name in served_names:
            assert all(map(_same, from_redis[name], expected[name])), (service, name)
        found = [v for name in served_names for v in from_redis[name] if v is not None]
        assert len(found) > len(rows)  # values, not a column of missing ones
    # the product rows served are the latest week's
    weekly = served.published["feat_product_weekly"]
    latest = _latest(weekly, ("product_id",), served.end)
    assert (latest["week_start_date"] == weekly["week_start_date"].max()).all()


def _entity_keys(served: Served) -> int:
    """The distinct entity keys materialized: one Redis hash each (every view's features
    of one entity key share it)."""
    return sum(
        len(_latest(served.published[table], keys, served.end)) for table, keys in VIEW_KEYS.items()
    )


def test_the_values_are_in_redis_and_served_from_there(served: Served) -> None:
    """Redis holds one hash per entity key; emptied, the stack serves nothing while the
    SQLite store of the same lake still serves; materialized again, the values are back."""
    rows = _entity_rows(served)["replenishment_v1"]
    client = redis_client(served.stack)
    try:
        assert client.dbsize() == _entity_keys(served)
        before = _online(served.stack, "replenishment_v1", rows)
        client.flushdb()
        emptied = _online(served.stack, "replenishment_v1", rows)
        assert emptied["stock_on_hand"] == [None] * len(rows)
        assert (
            _online(served.local, "replenishment_v1", rows)["stock_on_hand"]
            == (before["stock_on_hand"])
        )
        with _published_through_duckdb():
            features.materialize(served.stack, end=served.end, start=served.start)
        assert client.dbsize() == _entity_keys(served)
        assert _online(served.stack, "replenishment_v1", rows) == before
    finally:
        client.close()


def test_each_profile_records_only_its_own_loads(served: Served) -> None:
    """Feast records each load of the online store in its registry, and
    materialize-incremental starts where the last one ended: had the stack shared the
    local registry, its first incremental load would start where SQLite's ended and leave
    Redis without the rows before. The local store was loaded once (the fixture), however
    often the stack's was."""
    loads: dict[str, dict[str, int]] = {}
    for settings in (served.local, served.stack):
        with features.feature_store(settings) as store:
            views = store.list_feature_views()
            loads[settings.profile] = {v.name: len(v.materialization_intervals) for v in views}
    assert loads["local"] == dict.fromkeys(VIEWS, 1)
    assert loads["stack"].keys() == VIEWS and min(loads["stack"].values()) >= 1


def test_feast_cli_applies_and_materializes_the_stack_yaml(served: Served) -> None:
    """What feature_repo/README.md tells a Feast user: `cd feature_repo && feast -f
    feature_store.stack.yaml apply`, then materialize, with LAKEHOUSE_DATA_DIR and
    LAKEHOUSE_REDIS_CONNECTION set, load the stack's Redis."""
    feast = [os.path.join(os.path.dirname(sys.executable), "feast"), "-f"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")},
        "LAKEHOUSE_DATA_DIR": str(served.stack.root),
        "LAKEHOUSE_REDIS_CONNECTION": f"127.0.0.1:{served.stack.redis_port}",
    }
    client = redis_client(served.stack)
    try:
        client.flushdb()
        window = [
            served.start.strftime("%Y-%m-%dT%H:%M:%S"),
            served.end.strftime("%Y-%m-%dT%H:%M:%S"),
        ]
        for command in (["apply"], ["materialize", *window]):
            done = subprocess.run(
                [*feast, "feature_store.stack.yaml", *command],
                cwd=features.FEATURE_REPO_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"feast {command[0]}: {done.stderr[-2000:]}"
        assert client.dbsize() == _entity_keys(served)
    finally:
        client.close()
    rows = _entity_rows(served)["replenishment_v1"]
    assert _online(served.stack, "replenishment_v1", rows) == _online(
        served.local, "replenishment_v1", rows
    )
