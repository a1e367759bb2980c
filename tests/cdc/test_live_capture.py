"""The live path with real parts: PostgreSQL, the shop simulator, Debezium's PostgreSQL
connector (embedded engine), the topic log and the lander.

Phases: a snapshot of a database that already has history; streaming while the shop
runs; the connector stopped while the shop goes on, then restarted. After each, silver
must equal the source tables, and bronze must hold each committed change exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.cdc.debezium import CaptureReport, capture
from lakehouse.cdc.lander import ingest
from lakehouse.contracts import Contract, load_contracts
from lakehouse.metrics import MetricsServer
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.support.oltp import oltp_cluster
from tests.support.ports import free_port
from tests.support.truth import assert_silver_equals, expected_token, pii_key

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
WORLD = {"clients": 60, "products": 20}


class Capture:
    """The connector running in a background thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.stop = threading.Event()
        self.report: CaptureReport | None = None
        self.error: BaseException | None = None
        self.batches: list[float] = []

        def run() -> None:
            try:
                self.report = capture(
                    settings, stop=self.stop, on_batch=lambda n: self.batches.append(time.time())
                )
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait_quiet(self, seen: int = 0, quiet: float = 4.0, timeout: float = 120.0) -> None:
        """Until the connector delivered more than ``seen`` batches in all, then nothing
        more for ``quiet`` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.error is None, self.error
            if len(self.batches) > seen and time.time() - self.batches[-1] > quiet:
                return
            time.sleep(0.5)
        raise AssertionError("the connector did not settle")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(90)
        assert self.error is None, self.error


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("live")) as settings:
        yield settings


def _source_table(settings: Settings, contract: Contract) -> pa.Table:
    columns = ", ".join(contract.column_names)
    keys = ", ".join(contract.primary_key)
    with connect(settings) as conn:
        rows = conn.execute(f"select {columns} from {contract.table} order by {keys}").fetchall()
    key = pii_key(settings)
    records = []
    for row in rows:
        record = dict(zip(contract.column_names, row, strict=True))
        for column in contract.columns:
            if column.pii and record[column.name] is not None:
                record[column.name] = expected_token(key, record[column.name])
        records.append(record)
    return pa.Table.from_pylist(records, schema=contract.arrow_schema)


def _assert_silver_equals_source(settings: Settings) -> None:
    assert_silver_equals(settings, lambda contract: _source_table(settings, contract))


def _streamed(settings: Settings) -> Counter[tuple[str, str]]:
    """Bronze rows per (table, op) that came from streaming, not the snapshot."""
    out: Counter[tuple[str, str]] = Counter()
    for table in load_contracts(settings.contracts_dir):
        bronze = DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_table(
            columns=["_op", "_is_snapshot"]
        )
        streamed = bronze.filter(pc.invert(bronze.column("_is_snapshot")))
        for op, n in Counter(streamed.column("_op").to_pylist()).items():
            out[(table, op)] += n
    return out


def _captured(url: str) -> dict[str, dict[str, float]]:
    """The capture's metrics by topic, scraped as Prometheus would."""
    out: dict[str, dict[str, float]] = {"events": {}, "position": {}, "lag": {}}
    names = {
        "lakehouse_capture_events_total": "events",
        "lakehouse_capture_position": "position",
        "lakehouse_capture_lag_seconds": "lag",
    }
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            if sample.name in names:
                out[names[sample.name]][sample.labels["topic"]] = sample.value
    return out


def _changes(*summaries: Any) -> Counter[tuple[str, str]]:
    total: Counter[tuple[str, str]] = Counter()
    for s in summaries:
        total.update(s.changes)
    return total


def test_snapshot_streaming_and_restart_keep_silver_equal_to_the_source(
    shop: Settings,
) -> None:
    history = simulate(shop, SimulateParams(tps=0, duration=None, transactions=150, **WORLD))
    assert not history.resumed

    running = Capture(shop)
    running.wait_quiet()  # the initial snapshot of a database with history
    ingest(shop)
    _assert_silver_equals_source(shop)
    assert not _streamed(shop)

    seen = len(running.batches)
    with MetricsServer(free_port(), host="127.0.0.1", process="capture") as server:
        before = _captured(server.url)
        during = simulate(shop, SimulateParams(tps=0, duration=None, transactions=300, **WORLD))
        assert during.resumed
        running.wait_quiet(seen)
        after = _captured(server.url)
    ingest(shop)
    _assert_silver_equals_source(shop)
    assert _streamed(shop) == _changes(during)  # every committed change, once
    # the capture's metrics moved with it: at least an event per change (tombstones too),
    # each topic's position forward, its lag that of a change seconds old, not the snapshot's
    contracts = load_contracts(shop.contracts_dir)
    per_table: Counter[str] = Counter()
    for (table, _), n in _changes(during).items():
        per_table[table] += n
    for table, n in per_table.items():
        topic = shop.topic(contracts[table].table, contracts[table].schema)
        assert after["events"][topic] - before["events"].get(topic, 0) >= n, topic
        assert after["position"][topic] > before["position"].get(topic, 0), topic
        assert after["lag"][topic] < 60, topic

    # the connector goes away while the shop goes on; on restart it resumes from its
    # offsets: nothing missed, and whatever it sends twice is removed
    running.close()
    offline = simulate(shop, SimulateParams(tps=0, duration=None, transactions=200, **WORLD))
    restarted = Capture(shop)
    restarted.wait_quiet()
    restarted.close()
    ingest(shop)
    _assert_silver_equals_source(shop)
    assert _streamed(shop) == _changes(during, offline)
