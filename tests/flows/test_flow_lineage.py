"""The ingest flow run is the parent of the lander's lineage events: a real Prefect flow
run (its temporary server, in a process of its own) over a small recorded shop."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lakehouse.generate import generate
from lakehouse.lineage.query import read_events
from lakehouse.settings import load_settings
from tests.quality.gate_support import SMALL

pytestmark = pytest.mark.integration

_RUN_FLOW = """
import sys
from flows._runtime import settings_for
settings_for(sys.argv[1])  # PREFECT_HOME under the data directory, before Prefect loads
from flows.ingest import ingest_flow
ingest_flow(data_dir=sys.argv[1])
"""


def test_the_lander_runs_under_the_flow_run(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    generate(settings, SMALL)
    run = subprocess.run(
        [sys.executable, "-c", _RUN_FLOW, str(settings.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    events = read_events(settings.lineage_log)
    flow = [e for e in events if e["job"]["name"] == "flows.ingest"]
    assert [e["eventType"] for e in flow] == ["START", "COMPLETE"]
    flow_run = flow[0]["run"]["runId"]
    uuid.UUID(flow_run)  # the Prefect flow run's id
    lander = [e for e in events if e["job"]["name"] == "lander"]
    assert [e["eventType"] for e in lander] == ["START", "COMPLETE"]
    for event in lander:
        assert event["run"]["facets"]["parent"]["run"]["runId"] == flow_run
        assert event["run"]["facets"]["parent"]["job"]["name"] == "flows.ingest"
    tables = [e for e in events if e["job"]["name"].startswith("lander.")]
    assert {e["job"]["name"] for e in tables} == {
        f"lander.{t}"
        for t in (
            "client",
            "order_item",
            "orders",
            "product",
            "promotion",
            "sale",
            "stock",
            "transporter",
        )
    }
    lander_run = lander[0]["run"]["runId"]
    assert all(e["run"]["facets"]["parent"]["run"]["runId"] == lander_run for e in tables)
