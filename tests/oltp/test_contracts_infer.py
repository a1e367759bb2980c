"""`lakehouse contracts infer` drafts, from the live shop schema, the contracts the
project ships: same keys, columns, types, nullability, checks and PII classes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.cdc.source_setup import prepare_signal_table
from lakehouse.contracts import load_contracts
from lakehouse.settings import DEFAULT_CONTRACTS_DIR
from tests.support.oltp import oltp_cluster

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def test_inferred_contracts_match_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    with oltp_cluster(tmp_path / "db") as settings:
        prepare_signal_table(settings)  # capture's (Debezium's) table: never drafted
        out = tmp_path / "drafts"
        env = {
            "PATH": str(Path(sys.executable).parent),
            "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
        }
        run = subprocess.run(
            [LAKEHOUSE, "contracts", "infer", "--out", str(out), "--data-dir", str(settings.root)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    drafted = load_contracts(out)
    shipped = load_contracts(DEFAULT_CONTRACTS_DIR)
    assert set(drafted) == set(shipped)
    for name, contract in shipped.items():
        draft = drafted[name]
        assert draft.primary_key == contract.primary_key, name
        assert draft.columns == contract.columns, name
    assert "Review it" in (out / "client.yml").read_text()
    assert not any(c.reviewed for c in drafted.values())  # masked whole until reviewed
