"""Acceptance of the live path at volume: the shop simulator runs >= 100,000 row
operations (inserts, updates, deletes) over all tables in real PostgreSQL, with DDL in
between (a column added, filled and dropped again; numeric columns widened), while
Debezium captures and the lander lands in rounds, both as processes killed with SIGKILL
at random moments and restarted. Afterwards every silver table equals its source table,
bronze holds every committed change exactly once, and no file of the lake holds a raw
personal value."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.cluster import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture, _changes, _source_table, _streamed
from tests.support.oltp import oltp_cluster
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
OPERATIONS = 100_000
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


class _Killer:
    """Runs a `lakehouse` command as a process and kills it with SIGKILL at random
    moments, restarting it each time, until stopped."""

    def __init__(
        self,
        settings: Settings,
        args: list[str],
        rng: random.Random,
        pause: tuple[float, float],
        *,
        progress: Callable[[], int] | None = None,
        progress_wait_s: float = 120.0,
    ) -> None:
        """With ``progress``, each process is killed ``pause`` seconds after that count
        first grew (or after ``progress_wait_s``), not after it started: on a loaded
        machine a process may need longer to start than the pause, and never work."""
        self.log = settings.root / f"{args[0]}-killed.log"  # each process's output, for a failure
        self.progress, self.progress_wait_s = progress, progress_wait_s
        self.env = {
            **os.environ,
            "LAKEHOUSE_DATA_DIR": str(settings.root),
            "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
        }
        if settings.kafka_bootstrap_servers:
            self.env["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
        self.args, self.rng, self.pause = [LAKEHOUSE, *args], rng, pause
        self.kills = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=log
                )
            if self.progress is not None:
                self._wait_for_progress(proc)
            self.stop.wait(self.rng.uniform(*self.pause))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                self.kills += 1
            proc.wait(timeout=60)

    def _wait_for_progress(self, proc: subprocess.Popen[bytes]) -> None:
        assert self.progress is not None
        before = self.progress()
        deadline = time.monotonic() + self.progress_wait_s
        while (
            not self.stop.is_set()
            and proc.poll() is None
            and self.progress() == before
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


def test_a_hundred_thousand_operations_with_ddl_and_kills_land_exactly(
    shop: Settings,
) -> None:
    """The lander and the capture, processes of their own, are killed with SIGKILL (10+
    and 3+ times) during the run and restarted each time: each resumes from its own
    positions (the lake's app transactions; Debezium's persisted offsets, which are also
    what the replication slot is released up to)."""
    simulate(shop, SimulateParams(tps=0, duration=None, transactions=1, **WORLD))
    with connect(shop) as conn:
        start = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert start is not None
    before_lsn = start[0]
    rng = random.Random(11)
    running = Capture(shop)
    running.wait_quiet()  # the initial snapshot
    running.close()
    lander = _Killer(shop, ["ingest", "--follow", "--interval", "0.5"], rng, (2.0, 6.0))
    capture = _Killer(shop, ["capture"], rng, (10.0, 16.0))
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
    while lander.kills < 10 or capture.kills < 3:
        assert lander.thread.is_alive() and capture.thread.is_alive(), "a killer stopped"
        assert time.monotonic() < deadline, (
            f"{lander.kills} lander and {capture.kills} capture kills after "
            f"{KILLS_TIMEOUT_S:.0f} s more (10 and 3 wanted); see {lander.log}, {capture.log}"
        )
        time.sleep(1)
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
    assert lander.kills >= 10 and capture.kills >= 3
    with connect(shop) as conn:
        released = conn.execute(
            "select confirmed_flush_lsn > %s::pg_lsn from pg_replication_slots", [before_lsn]
        ).fetchone()
    assert released is not None and released[0], "the slot never released any WAL"

    committed = _changes(*summaries) + ddl_updates
    assert sum(committed.values()) >= OPERATIONS
    assert {op for _, op in committed} == {"c", "u", "d"}
    assert _streamed(shop) == committed  # every committed change once, none twice
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
