"""Kill the lander with SIGKILL at random points, restart it, and lose or double nothing.

The lander runs as a real process (`lakehouse ingest`) with small batches, so a kill
lands between, or in the middle of, its Delta commits. A kill is sent only while work is
in flight: once the restarted lander has committed (its own ``host:pid`` in a table's
history) and before it ends. After the last, uninterrupted run, bronze must hold every
recorded event exactly once, by identity, and silver must equal the ground truth."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.delta import WRITER_KEY
from lakehouse.settings import load_settings
from tests.support.exactly_once import assert_bronze_exactly_once
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
PARAMS = GenerateParams(clients=100, products=30, days=150, snapshot_day=10)
KILLS = 12
CRASH_KEY = "crash-test-key-0123456789abcdef0123"  # both lakes: the same tokens


def _committed_since(lake: Path, writer: str, seen: set[Path]) -> bool:
    """Whether a commit of ``writer`` (host:pid) is among the lake's new log entries."""
    found = False
    for entry in lake.glob("*/*/_delta_log/*.json"):
        if entry in seen:
            continue
        seen.add(entry)
        for line in entry.read_text().splitlines():
            info = json.loads(line).get("commitInfo")
            found |= info is not None and info.get(WRITER_KEY) == writer
    return found


def _kill_in_flight(proc: subprocess.Popen[bytes], lake: Path, rng: random.Random) -> bool:
    """SIGKILL ``proc`` a moment after its first commit; False when it ended first."""
    seen: set[Path] = set()
    writer = f"{socket.gethostname()}:{proc.pid}"
    deadline = time.monotonic() + 120
    while not _committed_since(lake, writer, seen):
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the lander committed nothing in 120 s"
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    return True


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    clean = load_settings(data_dir=tmp_path / "clean")
    generate(clean, PARAMS)
    ingest(clean)

    crashed = load_settings(data_dir=tmp_path / "crashed", changes_dir=clean.changes_path)
    env = {
        **os.environ,
        "LAKEHOUSE_INGEST_BATCH_EVENTS": "100",
        "LAKEHOUSE_CHANGES_DIR": str(clean.changes_path),
        "LAKEHOUSE_PII_KEY": CRASH_KEY,
    }
    rng = random.Random(7)
    killed_in_flight = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [LAKEHOUSE, "ingest", "--data-dir", str(crashed.root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        killed = _kill_in_flight(proc, crashed.root / "lake", rng)
        assert proc.wait(timeout=120) == (-signal.SIGKILL if killed else 0)
        if not killed:  # the workload ended before the kill: nothing left to interrupt
            break
        killed_in_flight += 1
    # every kill hit a lander that had landed since its start and had not ended
    assert killed_in_flight >= KILLS - 1, killed_in_flight

    final = subprocess.run(
        [LAKEHOUSE, "ingest", "--data-dir", str(crashed.root)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    crashed = load_settings(
        data_dir=crashed.root, changes_dir=clean.changes_path, pii_key=CRASH_KEY
    )
    assert_bronze_exactly_once(crashed, clean.changes_path)
    # the truth lives with the generated events; masking uses the crashed run's key
    crashed_with_truth = load_settings(
        data_dir=clean.root, lake_uri=str(crashed.root / "lake"), pii_key=CRASH_KEY
    )
    assert_silver_equals_truth(crashed_with_truth)
    dlq = crashed.root / "lake" / "dead_letter" / "events"
    assert not dlq.exists() or DeltaTable(str(dlq)).to_pyarrow_table().num_rows == 0
