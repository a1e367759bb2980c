"""Two landers and two builds started at once on one lake, repeatedly: bronze holds every
change event exactly once (by event identity), silver equals the source, the published
marts are one build's.

Landers run as real processes (`lakehouse ingest`) with small batches, so each makes
hundreds of commits. Sharing a data directory they share the lander lease: one lands,
the other waits and then finds nothing to do. With a data directory each (two machines
on one lake) nothing but the Delta commit keeps them apart: both land, interleaved, and
a batch the other landed first is planned again and skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.delta import WRITER_KEY
from lakehouse.settings import Settings, load_settings
from tests.support.exactly_once import (
    assert_bronze_exactly_once,
    bronze_identities,
    exactly_once_faults,
    source_identities,
)
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
PARAMS = GenerateParams(clients=60, products=20, days=60, snapshot_day=5)
ROUNDS = 2
PII_KEY = "two-writers-key-of-at-least-32-characters"
TIMEOUT = 240


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The generated change events and ground truth, not landed."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("recorded"), pii_key=PII_KEY)
    generate(settings, PARAMS)
    return settings


def _land_at_once(recorded: Settings, lake: Path, data_dirs: list[Path]) -> list[str]:
    """Start one `lakehouse ingest` per data directory at once on ``lake``; their stderr."""
    env = {
        **os.environ,
        "LAKEHOUSE_INGEST_BATCH_EVENTS": "100",
        "LAKEHOUSE_CHANGES_DIR": str(recorded.changes_path),
        "LAKEHOUSE_LAKE_URI": str(lake),
        "LAKEHOUSE_PII_KEY": PII_KEY,
    }
    # stderr goes to files: a lander waiting to be read through a full pipe would stall
    logs = [d.parent / f"{d.name}-ingest-{i}.err" for i, d in enumerate(data_dirs)]
    procs = []
    for d, log in zip(data_dirs, logs, strict=True):
        with log.open("w") as err:
            procs.append(
                subprocess.Popen(
                    [LAKEHOUSE, "ingest", "--data-dir", str(d)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    text=True,
                )
            )
    errors = []
    for proc, log in zip(procs, logs, strict=True):
        proc.wait(timeout=TIMEOUT)
        err = log.read_text()
        assert proc.returncode == 0, err
        errors.append(err)
    return errors


def _writers(settings: Settings) -> Counter[str]:
    """Commits per writer (host:pid) over every bronze and silver table."""
    commits: Counter[str] = Counter()
    for table in load_contracts(settings.contracts_dir):
        for layer in ("bronze", "silver"):
            for commit in DeltaTable(settings.table_uri(layer, table)).history():
                if WRITER_KEY in commit:
                    commits[str(commit[WRITER_KEY])] += 1
    return commits


def _check(recorded: Settings, lake: Path) -> Settings:
    landed = load_settings(data_dir=recorded.root, lake_uri=str(lake), pii_key=PII_KEY)
    assert_bronze_exactly_once(landed, recorded.changes_path)
    assert_silver_equals_truth(landed)
    dlq = lake / "dead_letter" / "events"
    assert not dlq.exists() or DeltaTable(str(dlq)).to_pyarrow_table().num_rows == 0
    return landed


def test_two_landers_sharing_the_lease_land_each_event_once(
    recorded: Settings, tmp_path: Path
) -> None:
    for n in range(ROUNDS):
        lake, data_dir = tmp_path / f"lake{n}", tmp_path / f"data{n}"
        errors = _land_at_once(recorded, lake, [data_dir, data_dir])
        landed = _check(recorded, lake)
        # the lease serialised them: one wrote every commit, the other waited (and said so)
        assert len(_writers(landed)) == 1, _writers(landed)
        assert sum("waiting for a lander" in e for e in errors) == 1, errors


def test_two_landers_on_two_machines_land_each_event_once(
    recorded: Settings, tmp_path: Path
) -> None:
    interleaved = 0
    for n in range(ROUNDS + 1):  # one more: a round where one lander started late proves less
        lake = tmp_path / f"lake{n}"
        _land_at_once(recorded, lake, [tmp_path / f"a{n}", tmp_path / f"b{n}"])
        landed = _check(recorded, lake)
        interleaved += len(_writers(landed)) == 2
    # no lease between them: the Delta commits alone kept bronze exactly once while both
    # landers really committed to the same tables (in most rounds; one start can be slow)
    assert interleaved >= 1


def test_the_identity_check_finds_a_planted_duplicate(recorded: Settings, tmp_path: Path) -> None:
    """Positive control: one event landed twice, and one missing, are both reported."""
    lake = tmp_path / "lake"
    _land_at_once(recorded, lake, [tmp_path / "data"])
    landed = _check(recorded, lake)
    table = DeltaTable(landed.table_uri("bronze", "orders"))
    write_deltalake(table, table.to_pyarrow_table().slice(7, 1), mode="append")
    expected = source_identities(landed, recorded.changes_path)
    faults = exactly_once_faults(expected, bronze_identities(landed))
    assert len(faults) == 1 and faults[0].startswith("landed 2 times: ('orders'"), faults
    expected[("orders", -1, (0,), "c")] += 1  # an event bronze never saw
    faults = exactly_once_faults(expected, bronze_identities(landed))
    assert any(f.startswith("missing: ('orders', -1") for f in faults), faults
