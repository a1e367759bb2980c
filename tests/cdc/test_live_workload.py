"""Acceptance of the live path at volume: the shop simulator runs >= 100,000 row
operations (inserts, updates, deletes) over all tables in real PostgreSQL, with DDL in
between (a column added, filled and dropped again; numeric columns widened), while
Debezium captures and the lander lands in rounds, both as processes killed with SIGKILL
at random moments and restarted. Afterwards every silver table equals its source table,
bronze holds every committed change exactly once, and no file of the lake holds a raw
personal value."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture, _changes, _source_table
from tests.support.exactly_once import assert_bronze_exactly_once, streamed_changes
from tests.support.killer import Killer, change_log_bytes, delta_commits
from tests.support.oltp import oltp_cluster
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
OPERATIONS = 100_000
LANDER_KILLS, CAPTURE_KILLS = 10, 3
KILLS_TIMEOUT_S = 600.0  # for the kills still missing once the shop's operations are in
WORLD = {"clients": 300, "products": 60}
DDL = [
    ["alter table client add column note text"],
    ["update client set note = 'vip', updated_at = now() where client_id % 7 = 0"],
    [
        "alter table product alter column price type numeric(14, 2)",
        "alter table order_item alter column quantity type bigint",
    ],
    ["alter table client drop column note"],
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("workload")) as settings:
        yield settings


def test_a_hundred_thousand_operations_with_ddl_and_kills_land_exactly(
    shop: Settings,
) -> None:
    """The lander and the capture, processes of their own, are killed with SIGKILL while
    the shop runs and restarted each time: the lander 10+ times in the middle of a round
    (after it has landed since its start, while it holds the lander lease), the capture
    3+ times after it has captured since its start. Each resumes from its own positions
    (the lake's app transactions; Debezium's persisted offsets, which are also what the
    replication slot is released up to). The shop goes on until the kills are in."""
    simulate(shop, SimulateParams(tps=0, duration=None, transactions=1, **WORLD))
    with connect(shop) as conn:
        start = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert start is not None
    before_lsn = start[0]
    rng = random.Random(11)
    running = Capture(shop)
    running.wait_quiet()  # the initial snapshot
    running.close()
    lander = Killer(
        shop,
        ["ingest", "--follow", "--interval", "0.5"],
        rng,
        (0.0, 4.0),
        progress=lambda: delta_commits(shop),
        lease="lander",
    )
    capture = Killer(shop, ["capture"], rng, (4.0, 10.0), progress=lambda: change_log_bytes(shop))
    summaries = []
    ddl_updates: Counter[tuple[str, str]] = Counter()
    per_chunk = OPERATIONS // (len(DDL) + 1)
    for statements in [*DDL, []]:
        done = 0
        while done < per_chunk:
            s = simulate(shop, SimulateParams(tps=0, duration=None, transactions=2000, **WORLD))
            summaries.append(s)
            done += sum(s.changes.values())
        with connect(shop) as conn:
            for statement in statements:
                result = conn.execute(statement)
                if statement.startswith("update"):
                    ddl_updates[("client", "u")] += result.rowcount
            conn.commit()
    deadline = time.monotonic() + KILLS_TIMEOUT_S
    while lander.in_flight < LANDER_KILLS or capture.kills < CAPTURE_KILLS:
        assert lander.thread.is_alive() and capture.thread.is_alive(), "a killer stopped"
        assert time.monotonic() < deadline, (
            f"{lander.in_flight} of {lander.kills} lander kills in a round and "
            f"{capture.kills} capture kills after {KILLS_TIMEOUT_S:.0f} s more "
            f"({LANDER_KILLS} and {CAPTURE_KILLS} wanted); see {lander.log}, {capture.log}"
        )
        # the shop goes on: every kill falls while there is work to land
        summaries.append(
            simulate(shop, SimulateParams(tps=0, duration=None, transactions=300, **WORLD))
        )
    lander.close()
    capture.close()
    final = Capture(shop)  # one last capture, left to finish, and one last landing
    started = time.time()
    while not final.batches and time.time() - started < 30:  # maybe nothing to resend
        time.sleep(0.5)
    if final.batches:
        final.wait_quiet(quiet=6)
    final.close()
    ingest(shop)
    assert lander.in_flight >= LANDER_KILLS and capture.kills >= CAPTURE_KILLS
    with connect(shop) as conn:
        released = conn.execute(
            "select confirmed_flush_lsn > %s::pg_lsn from pg_replication_slots", [before_lsn]
        ).fetchone()
    assert released is not None and released[0], "the slot never released any WAL"

    committed = _changes(*summaries) + ddl_updates
    assert sum(committed.values()) >= OPERATIONS
    assert {op for _, op in committed} == {"c", "u", "d"}
    events = assert_bronze_exactly_once(shop, shop.changes_path)  # by event identity
    assert streamed_changes(events) == committed  # and the capture missed none
    assert_silver_equals(shop, lambda contract: _source_table(shop, contract))
    _assert_no_raw_pii_in_the_lake(shop)


def _assert_no_raw_pii_in_the_lake(settings: Settings) -> None:
    """Every personal value the simulator wrote, looked for in every file of the lake
    (raw bytes, and the decoded strings of every Parquet file)."""
    with connect(settings) as conn:
        rows = conn.execute("select first_name, last_name, email, phone from client").fetchall()
    personal = {v for row in rows for v in row if v}
    emails = {v for v in personal if "@" in v}
    assert len(emails) > 100
    files = [p for p in (settings.root / "lake").rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert not [v for v in emails if v.encode() in data], path
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                if pa.types.is_string(column.type):
                    assert not personal & set(column.to_pylist()), (path, column)
