"""A long capture does not hold the WAL forever: every `capture_release_wal_seconds` the
engine restarts and the replication slot moves up to what the topic log durably holds,
while nothing is lost or duplicated across the restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import WORLD, Capture, _changes, _source_table, _streamed
from tests.support.oltp import oltp_cluster
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]


def _confirmed(settings: Settings) -> int:
    with connect(settings) as conn:
        row = conn.execute(
            "select confirmed_flush_lsn - '0/0'::pg_lsn from pg_replication_slots "
            "where slot_name = %s",
            [f"lakehouse_{settings.source_name}"],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_slot_moves_up_while_capture_runs_and_nothing_is_lost(tmp_path: Path) -> None:
    with oltp_cluster(tmp_path, capture_release_wal_seconds=4) as settings:
        simulate(settings, SimulateParams(tps=0, duration=None, transactions=100, **WORLD))
        running = Capture(settings)
        running.wait_quiet()  # the snapshot is in
        first = _confirmed(settings)
        during = []
        for _ in range(3):  # writes spread over several rounds of the engine
            during.append(simulate(settings, SimulateParams(tps=100, duration=3, **WORLD)))
            time.sleep(2)
        time.sleep(6)  # one more round after the last write
        moved = _confirmed(settings)
        seen = len(running.batches)
        running.wait_quiet(seen - 1)
        running.close()
        assert running.report is not None and running.report.rounds >= 2
        assert moved > first, "the slot did not move while capture ran"

        ingest(settings)
        assert_silver_equals(settings, lambda contract: _source_table(settings, contract))
        assert _streamed(settings) == _changes(*during)  # every change once, across rounds
