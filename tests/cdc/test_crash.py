"""Kill the lander with SIGKILL at random points, restart it, and lose or double nothing.

The lander runs as a real process (`lakehouse ingest`) with small batches, so a kill
lands between, or in the middle of, its Delta commits. After the last, uninterrupted run,
silver must equal the ground truth and bronze must hold exactly the rows of a run that
was never interrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.bronze import identity
from lakehouse.settings import Settings, load_settings
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
PARAMS = GenerateParams(clients=100, products=30, days=150, snapshot_day=10)
KILLS = 12
CRASH_KEY = "crash-test-key-0123456789abcdef0123"  # both lakes: the same tokens


def _bronze(settings: Settings) -> dict[str, int]:
    out = {}
    for table, contract in load_contracts(settings.contracts_dir).items():
        rows = DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_table()
        keys = identity(contract)
        distinct = rows.group_by(keys).aggregate([]).num_rows
        assert distinct == rows.num_rows, f"bronze {table} holds duplicates"
        out[table] = rows.num_rows
    return out


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
    killed_while_working = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [LAKEHOUSE, "ingest", "--data-dir", str(crashed.root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.2, 2.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_while_working += 1
        proc.wait()
    assert killed_while_working >= 10  # the kills really hit a running lander

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
    assert _bronze(crashed) == _bronze(clean)
    # the truth lives with the generated events; masking uses the crashed run's key
    crashed_with_truth = load_settings(
        data_dir=clean.root, lake_uri=str(crashed.root / "lake"), pii_key=CRASH_KEY
    )
    assert_silver_equals_truth(crashed_with_truth)
    dlq = crashed.root / "lake" / "dead_letter" / "events"
    assert not dlq.exists() or DeltaTable(str(dlq)).to_pyarrow_table().num_rows == 0
