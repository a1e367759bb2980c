"""A column added with a default: PostgreSQL fills it in every existing row and sends no
event for it. Capture notices the new column in the catalog and has Debezium re-read
the table (an incremental snapshot through the signal table); silver then holds the
default in the rows nothing touched since, while the shop keeps changing rows during the
re-read and every change stays newer than the re-read row. A type change that rounds
every price is read again the same way. Real PostgreSQL, real Debezium, the lander."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture, _assert_silver_equals_source
from tests.support.oltp import oltp_cluster

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]

# (table, key, added column, its definition): two tables that get a default, one whose
# rows are changed afterwards and one nothing touches again; one without a default
ADDED = [
    ("client", "client_id", "tier", "integer default 7"),
    ("transporter", "transporter_id", "rating", "integer default 3"),
    ("orders", "order_id", "note", "text"),
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("default")) as settings:
        yield settings


def _source(settings: Settings, table: str, key: str, column: str) -> dict[int, object]:
    with connect(settings) as conn:
        return dict(conn.execute(f"select {key}, {column} from {table}").fetchall())  # type: ignore[arg-type]


def _silver(settings: Settings, table: str, key: str, column: str) -> dict[int, object]:
    rows = DeltaTable(settings.table_uri("silver", table)).to_pyarrow_table().to_pylist()
    return {r[key]: r.get(column) for r in rows}


def test_rows_untouched_since_add_column_get_the_default_in_silver(shop: Settings) -> None:
    simulate(shop, SimulateParams(tps=0, duration=None, transactions=40, clients=2000, products=15))
    running = Capture(shop)
    running.wait_quiet()
    ingest(shop)

    with connect(shop) as conn:
        for table, _, column, definition in ADDED:
            conn.execute(f"alter table {table} add column {column} {definition}")
        # every price rounded to one decimal: no event either
        conn.execute("alter table product alter column price type numeric(10, 1)")
        conn.execute("update client set tier = 1, updated_at = now() where client_id <= 10")
        conn.commit()
    # the shop goes on while the table is read again: new clients, changed rows
    shop_runs = threading.Thread(
        target=simulate, args=(shop, SimulateParams(tps=25, duration=6, transactions=None))
    )
    shop_runs.start()
    with connect(shop) as conn:
        conn.execute("update client set tier = 2 where client_id between 11 and 20")
        conn.commit()
    shop_runs.join()

    deadline = time.monotonic() + 60
    while True:  # until the re-read rows have landed
        ingest(shop)
        silver = _silver(shop, "client", "client_id", "tier")
        source = _source(shop, "client", "client_id", "tier")
        if silver == source or time.monotonic() > deadline:
            break
        time.sleep(1)
    running.close()
    report = ingest(shop)

    assert report.rejected == 0
    assert source[1] == 1 and source[15] == 2 and source[100] == 7
    for table, key, column, _ in ADDED:
        assert _silver(shop, table, key, column) == _source(shop, table, key, column), table
    _assert_silver_equals_source(shop)  # every column of every table, the prices too
    assert running.report is not None
    re_read = sorted(request.split(":")[0] for request in running.report.snapshots)
    # not orders: its new column is null everywhere, as silver has it
    assert re_read == ["public.client", "public.product", "public.transporter"]
    signal = shop.topic("lakehouse_signal")
    assert not (shop.changes_path / signal).exists(), "the signal table's rows were logged"
