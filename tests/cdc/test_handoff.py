"""Snapshot-to-stream handoff while the shop writes: no gap and no overlap.

The connector starts for the first time while the simulator commits transactions in
another process, so its initial snapshot is taken under concurrent writes. With
``REPLICA IDENTITY FULL`` every update and delete carries the full previous row, which
gives an exact check: for every key, each streamed change's ``before`` must equal the
row the previous event left (the snapshot's row, or the previous change's). A change
missed between snapshot and stream breaks that chain, and so does one seen in both.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings, load_settings
from tests.cdc.test_live_capture import WORLD, Capture, _source_table
from tests.support.oltp import oltp_cluster
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]


def _simulate_child(data_dir: str, port: int, out: Any) -> None:
    settings = load_settings(data_dir=Path(data_dir), oltp_port=port)
    summary = simulate(settings, SimulateParams(tps=150, duration=12, **WORLD))
    out.put(summary.transactions)


def _events(settings: Settings, table: str) -> list[dict[str, Any]]:
    """The topic's records in log order (the connector's delivery order)."""
    source = FileSource(settings.changes_path)
    topic = settings.topic(table)
    events = []
    for _, path in source.segments(topic):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            if record["value"] is not None:  # tombstones carry no row
                events.append(record["value"])
    return events


def test_a_snapshot_taken_under_concurrent_writes_hands_over_to_the_stream_exactly(
    tmp_path: Path,
) -> None:
    with oltp_cluster(tmp_path) as settings:
        simulate(settings, SimulateParams(tps=0, duration=None, transactions=200, **WORLD))
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        writer = ctx.Process(
            target=_simulate_child, args=(str(settings.root), settings.oltp_port, out)
        )
        writer.start()
        time.sleep(3)  # the shop is writing when the connector starts
        running = Capture(settings)
        committed = out.get(timeout=120)
        writer.join(30)
        running.wait_quiet()
        running.close()
        assert committed > 500

        contracts = load_contracts(settings.contracts_dir)
        snapshot_rows = streamed = 0
        for table, contract in contracts.items():
            state: dict[tuple[Any, ...], dict[str, Any] | None] = {}
            for event in _events(settings, table):
                row = event["after"] if event["op"] != "d" else event["before"]
                key = tuple(row[k] for k in contract.primary_key)
                if event["op"] == "r":
                    assert key not in state, f"{table} {key}: snapshotted twice"
                    snapshot_rows += 1
                elif event["op"] == "c":
                    assert state.get(key) is None, f"{table} {key}: inserted over a row"
                    streamed += 1
                else:
                    streamed += 1
                    assert event["before"] == state.get(key), (
                        f"{table} {key}: the {event['op']} does not follow the row before it "
                        "(a change lost or seen twice at the handoff)"
                    )
                state[key] = event["after"]
        assert snapshot_rows > 0 and streamed > 0

        ingest(settings)
        assert_silver_equals(settings, lambda contract: _source_table(settings, contract))
