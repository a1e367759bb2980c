"""Reconciliation of silver with the source: recorded files against the generator's
ground truth, and a live capture against the PostgreSQL database it captured. A lake
that holds the source's rows passes; a row lost, added or changed on either side fails
the checks of its table, and only those."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.oltp.client import connect
from lakehouse.oltp.cluster import Cluster
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.quality import CheckResult
from lakehouse.quality import reconcile as reconcile_module
from lakehouse.quality.gate import source_up
from lakehouse.quality.reconcile import reconcile, reconcile_tables, source_kind
from lakehouse.settings import Settings, load_settings
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster

pytestmark = pytest.mark.integration
TABLES = {"client", "order_item", "orders", "product", "promotion", "sale", "stock", "transporter"}


def _by_name(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.check: c for c in checks}


def _failed(checks: list[CheckResult]) -> set[str]:
    return {c.check for c in checks if not c.passed}


# -- recorded files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small lake landed from recorded change files; tests change copies of it."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("recorded"))
    generate(settings, GenerateParams(clients=50, products=20, days=20, snapshot_day=5))
    ingest(settings)
    return settings.root


def _copy(recorded: Path, tmp_path: Path) -> Settings:
    shutil.copytree(recorded, tmp_path / "lake_copy")
    return load_settings(data_dir=tmp_path / "lake_copy")


def _silver(settings: Settings, table: str) -> DeltaTable:
    return DeltaTable(settings.table_uri("silver", table))


def test_a_lake_landed_from_recorded_files_reconciles(recorded: Path) -> None:
    settings = load_settings(data_dir=recorded)
    assert source_kind(settings) == "files"
    checks = reconcile(settings)
    assert {c.check for c in checks} == {
        f"reconcile:{t}:{m}" for t in TABLES for m in ("row_count", "checksum")
    }
    assert all(c.passed and not c.blocks for c in checks), [c.detail for c in checks]
    assert {(c.kind, c.layer, c.severity) for c in checks} == {
        ("reconciliation", "silver", "error")
    }
    # the counts are the generator's own, not only equal to each other
    totals = json.loads((settings.ground_truth_path / "totals.json").read_text())
    figures = {f.table: f for f in reconcile_tables(settings)}
    assert {t: f.source_rows for t, f in figures.items()} == totals["rows"]
    assert {t: f.silver_rows for t, f in figures.items()} == totals["rows"]


def test_a_row_missing_in_silver_fails_the_count_and_the_checksum(
    recorded: Path, tmp_path: Path
) -> None:
    settings = _copy(recorded, tmp_path)
    orders = _silver(settings, "orders")
    victim = orders.to_pyarrow_table(columns=["order_id"]).column(0)[0].as_py()
    orders.delete(f"order_id = {victim}")

    checks = reconcile(settings)
    assert _failed(checks) == {"reconcile:orders:row_count", "reconcile:orders:checksum"}
    count = _by_name(checks)["reconcile:orders:row_count"]
    assert count.blocks
    assert int(count.observed or 0) == int(count.expected or 0) - 1
    assert count.detail.startswith("silver.orders has ")
    checksum = _by_name(checks)["reconcile:orders:checksum"]
    assert checksum.observed != checksum.expected
    assert "1 row only in the source" in checksum.detail


def test_a_changed_value_fails_the_checksum_only(recorded: Path, tmp_path: Path) -> None:
    settings = _copy(recorded, tmp_path)
    items = _silver(settings, "order_item")
    victim = items.to_pyarrow_table(columns=["order_item_id"]).column(0)[0].as_py()
    items.update(predicate=f"order_item_id = {victim}", updates={"quantity": "quantity + 1"})
    clients = _silver(settings, "client")  # a PII column: compared as tokens
    client = clients.to_pyarrow_table(columns=["client_id"]).column(0)[0].as_py()
    clients.update(predicate=f"client_id = {client}", updates={"email": "'pii:0'"})

    checks = reconcile(settings)
    assert _failed(checks) == {"reconcile:order_item:checksum", "reconcile:client:checksum"}
    for table in ("order_item", "client"):
        checksum = _by_name(checks)[f"reconcile:{table}:checksum"]
        assert checksum.blocks
        assert checksum.detail == (
            f"silver.{table} and the source differ: 1 row with other values (by primary key)"
        )


def test_a_row_only_in_silver_is_found(recorded: Path, tmp_path: Path) -> None:
    settings = _copy(recorded, tmp_path)
    stock = _silver(settings, "stock")
    # the same row twice under another warehouse: an extra key, the row count one more
    row = stock.to_pyarrow_table().slice(0, 1)
    where = row.schema.get_field_index("warehouse_id")
    extra = row.set_column(where, "warehouse_id", pa.chunked_array([["nowhere"]]))
    write_deltalake(stock, extra, mode="append")

    checks = reconcile(settings)
    assert _failed(checks) == {"reconcile:stock:row_count", "reconcile:stock:checksum"}
    assert "1 row only in silver" in _by_name(checks)["reconcile:stock:checksum"].detail


def test_without_a_source_nothing_is_reconciled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(data_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="lakehouse.quality.reconcile"):
        assert reconcile(settings) == []
    assert "no source to reconcile with" in caplog.text


# -- a live capture of PostgreSQL ---------------------------------------------------------

# Types whose text or numbers travel differently through Debezium than through COPY: the
# reconciliation must turn both into the same lake values.
ODD_TABLE = """
create table ledger.entry (
    id uuid primary key,
    doc jsonb,
    amount numeric(20, 6),
    ratio numeric,
    happened_at timestamptz,
    local_at timestamp,
    saved_at timestamp(3),
    day date,
    flag boolean,
    score double precision,
    weight real,
    code char(5),
    note text,
    email text,
    span interval,
    mood ledger.mood,
    host inet
)
"""
ODD_ROWS = """
insert into ledger.entry values
 ('9f0c7a8e-0000-4000-8000-000000000001', '{"b": [1, 2.5, {"t": "ünï ✓"}], "a": null}',
  -12345678901234.123456, 3.14159265358979323846264338327950288419716939937510,
  '2024-03-01 10:15:30.123456+05:30', '1999-12-31 23:59:59.999999',
  '1999-12-31 23:59:59.999', '1900-01-01', true, 0.1, 1.1, 'ab', E'two\\nlines, "quoted"',
  'ada@example.com', '1 day 02:03:04.5', 'calm', '192.168.0.1/24'),
 ('9f0c7a8e-0000-4000-8000-000000000002', '[]', 0.000001, -1e-30,
  '1969-12-31 23:59:59.999999-08', '1960-06-01 00:00:00.000001', '1969-12-31 23:59:59.001',
  '9999-12-31', false, -1e300, -0.5, '', '', '', '-00:00:00.000001', 'busy', '::1'),
 ('9f0c7a8e-0000-4000-8000-000000000003', null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null),
 ('9f0c7a8e-0000-4000-8000-000000000004', '"just a string"', 99999999999999.999999,
  100000000000000000000000000000000000000000, '2000-02-29 00:00:00.000001+00',
  '1970-01-01', '2024-02-29 12:00:00', '1970-01-01', true, 123456789.123456789, 3.4e38,
  'abcde', 'ünïcødé 日本語', 'x,y', '-5 hours', 'calm', '10.0.0.0/8'),
 ('9f0c7a8e-0000-4000-8000-000000000005', '{}', -0.000001, 0, '1900-01-01 00:00:00+00',
  '2038-01-19 03:14:08.000001', null, '2024-02-29', false, 0, 0, null, 'NULL', null,
  '1 year 2 mons 3 days', null, null),
 ('9f0c7a8e-0000-4000-8000-000000000006', null, null, null, null, null, null, null, null,
  null, null, null, null, null, '-1 years -2 mons +3 days -04:05:06.75', null, null)
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A shop with some history and an odd table, captured (snapshot) and landed; the
    capture is stopped, so later changes in the database stay out of the lake."""
    with oltp_cluster(tmp_path_factory.mktemp("live")) as settings:
        with connect(settings) as conn:
            conn.execute("create schema ledger")
            conn.execute("create type ledger.mood as enum ('calm', 'busy')")
            conn.execute(ODD_TABLE)
            conn.execute(ODD_ROWS)
            conn.commit()
        simulate(
            settings,
            SimulateParams(tps=0, duration=None, transactions=120, clients=40, products=15),
        )
        running = Capture(settings)
        try:
            running.wait_quiet()
        finally:
            running.close()
        ingest(settings)
        yield settings


@pytest.mark.xdist_group("debezium")
def test_a_live_capture_reconciles_with_the_database(live: Settings) -> None:
    assert source_kind(live) == "live"
    checks = reconcile(live)
    tables = {c.table for c in checks}
    assert tables == TABLES | {"ledger__entry", "schema_migrations"}  # every captured table
    assert all(c.passed for c in checks), [c.detail for c in checks if not c.passed]
    # the counts are the database's own
    with connect(live) as conn:
        for figures in reconcile_tables(live):
            schema, _, table = figures.table.rpartition("__")
            row = conn.execute(f"select count(*) from {schema or 'public'}.{table}").fetchone()
            assert row is not None and figures.source_rows == row[0], figures.table


@pytest.mark.xdist_group("debezium")
def test_a_stopped_database_is_one_clear_line_and_the_gate_starts_it(live: Settings) -> None:
    """Reconciliation starts nothing: with the database stopped, every check fails with
    the one line that says where it could not connect. The gate has it up around
    reconciliation (and stops it again); then it passes."""
    cluster = Cluster(live)
    cluster.down()
    try:
        checks = reconcile(live)
        assert checks and not any(c.passed for c in checks)
        reasons = {c.detail.split(" not reconciled: ", 1)[1] for c in checks}
        assert len(reasons) == 1, reasons
        assert reasons.pop().startswith(f"cannot connect to PostgreSQL at {live.oltp_host}")
        assert cluster.pid() is None
        with source_up(live):
            assert cluster.pid() is not None
            checks = reconcile(live)
        assert checks and all(c.passed for c in checks)
        assert cluster.pid() is None
    finally:
        cluster.up()


@pytest.mark.xdist_group("debezium")
def test_changes_the_capture_missed_are_found(live: Settings) -> None:
    with connect(live) as conn:
        conn.execute("insert into transporter values (999, 'Late', 'express', 3.50, now())")
        conn.execute("update client set city = 'Elsewhere' where client_id = 1")
        conn.execute("update ledger.entry set span = span + interval '1 second' where doc = '[]'")
        conn.commit()

    quick = live.model_copy(update={"reconcile_live_wait_seconds": 2.0})  # they never land
    checks = _by_name(reconcile(quick))
    assert _failed(list(checks.values())) == {
        "reconcile:transporter:row_count",
        "reconcile:transporter:checksum",
        "reconcile:client:checksum",
        "reconcile:ledger__entry:checksum",
    }
    count = checks["reconcile:transporter:row_count"]
    assert int(count.expected or 0) == int(count.observed or 0) + 1
    assert "1 row only in the source" in checks["reconcile:transporter:checksum"].detail
    assert "1 row with other values" in checks["reconcile:client:checksum"].detail


@pytest.mark.xdist_group("debezium")
def test_while_the_shop_goes_on_silver_is_compared_as_of_the_snapshot(
    live: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change committed before the snapshot that silver has not landed yet is waited
    for; a change committed after the snapshot (silver has it, the snapshot has not) is
    left out on both sides. Runs last: the capture lands what the test above missed."""
    with connect(live) as conn:
        conn.execute("update client set city = 'Before' where client_id = 2")
        conn.commit()
    time.sleep(reconcile_module.IN_FLIGHT_MARGIN.total_seconds() + 1)
    taken = reconcile_module.source_snapshot

    @contextmanager
    def snapshot_then_a_change(settings: Settings) -> Iterator[object]:
        with taken(settings) as snapshot:
            with connect(live) as conn:  # committed after the snapshot was taken
                conn.execute("update client set city = 'After' where client_id = 3")
                conn.commit()
            yield snapshot

    monkeypatch.setattr(reconcile_module, "source_snapshot", snapshot_then_a_change)
    done = threading.Event()

    def land() -> None:  # the lander, following, while the reconciliation waits
        while not done.is_set():
            ingest(live)
            time.sleep(0.5)

    running = Capture(live)
    lander = threading.Thread(target=land, daemon=True)
    lander.start()
    try:
        settings = live.model_copy(update={"reconcile_live_wait_seconds": 180.0})
        figures = {f.table: f for f in reconcile_tables(settings)}
    finally:
        done.set()
        lander.join(60)
        running.close()
    client = figures["client"]
    assert client.rows_match and client.checksums_match, client
    assert client.in_flight == 1  # client 3, changed after the snapshot
    assert all(f.rows_match and f.checksums_match for f in figures.values()), figures
    silver = _silver(live, "client").to_pyarrow_table(columns=["client_id", "city"])
    cities = dict(zip(*silver.to_pydict().values(), strict=True))
    assert (cities[2], cities[3]) == ("Before", "After")
    # a plain reconciliation afterwards, with the shop quiet, compares every key
    checks = reconcile(live)
    assert checks and all(c.passed for c in checks), [c.detail for c in checks if not c.passed]
