"""The generator's events through the lander at a small scale: incremental runs, bad
events, and what `lakehouse status --json` reports about them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import Settings, load_settings
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
SMALL = GenerateParams(clients=60, products=20, days=90, snapshot_day=10)
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def _bronze_rows(settings: Settings) -> dict[str, int]:
    return {
        t: DeltaTable(settings.table_uri("bronze", t)).to_pyarrow_dataset().count_rows()
        for t in load_contracts(settings.contracts_dir)
    }


def test_events_arriving_in_pieces_land_once(tmp_path: Path) -> None:
    whole = load_settings(data_dir=tmp_path / "whole")
    generate(whole, SMALL)
    ingest(whole)
    assert_silver_equals_truth(whole)

    # the same events, but the lander runs while each topic is a third, then two thirds
    # written, with a torn last line each time (a writer mid-line)
    pieces = load_settings(data_dir=tmp_path / "pieces")
    generate(pieces, SMALL)
    full = {p: p.read_bytes() for p in pieces.changes_path.glob("*/*.jsonl")}
    for share in (1 / 3, 2 / 3, 1):
        for path, data in full.items():
            cut = int(len(data) * share)
            path.write_bytes(data[:cut])
        ingest(pieces)
    assert_silver_equals_truth(pieces)
    assert _bronze_rows(pieces) == _bronze_rows(whole)


def test_bad_events_are_dead_lettered_and_status_reports_them(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    generate(settings, SMALL)
    segment = sorted((settings.changes_path / "oltp.public.orders").glob("*.jsonl"))[-1]
    good = json.loads(segment.read_bytes().splitlines()[-1])
    bad_type = json.loads(json.dumps(good))
    bad_type["value"]["after"]["client_id"] = "not a number"
    unknown_op = json.loads(json.dumps(good))
    unknown_op["value"]["op"] = "x"
    with segment.open("ab") as f:
        f.write(b"this is not json\n")
        f.write(json.dumps(bad_type).encode() + b"\n")
        f.write(json.dumps(unknown_op).encode() + b"\n")

    run = subprocess.run(
        [LAKEHOUSE, "ingest", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert_silver_equals_truth(settings)  # the good events all landed

    status = subprocess.run(
        [LAKEHOUSE, "status", "--json", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(status.stdout)
    assert report["dead_letters"] == 3
    reasons = " | ".join(r["reason"] for r in report["dead_letters_by_reason"])
    assert "JSON" in reasons or "json" in reasons
    assert "client_id" in reasons and "op" in reasons
    orders = next(t for t in report["tables"] if t["table"] == "orders")
    assert (
        orders["consumed_offset"]
        == sum(len(p.read_bytes().splitlines()) for p in segment.parent.glob("*.jsonl")) - 1
    )


def test_dbt_build_from_the_project_directory_with_the_documented_profile(
    tmp_path: Path,
) -> None:
    """What a data engineer does: `cd dbt_project && dbt build`, paths from env_var()."""
    settings = load_settings(data_dir=tmp_path)
    generate(settings, SMALL)
    ingest(settings)
    env = {**settings.dbt_env(), "PATH": str(Path(sys.executable).parent)}
    project = Path(__file__).resolve().parents[2] / "dbt_project"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert "ERROR=0" in run.stdout and "PASS=" in run.stdout
    shutil.rmtree(tmp_path / "target", ignore_errors=True)
