"""Lineage end to end: a small shop landed in two lander runs and built through the gate;
one published mart row is followed by `lakehouse lineage` back to the silver tables and
the Delta versions it was built from, and those rows' source positions to the lander run
that landed them and to the change events the source wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.exceptions import LineageError
from lakehouse.generate import generate
from lakehouse.lineage.query import mart_lineage, read_events
from lakehouse.lineage.runs import published
from lakehouse.quality.gate import publish_or_block, write
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from tests.quality.gate_support import SMALL, lake_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("lineage")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
MART = "fct_order_item"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shop's changes landed in two runs (half of every topic, then the rest), then
    built and published by the gate (write, then publish: the audit adds nothing here)."""
    settings = lake_settings(tmp_path_factory.mktemp("lineage") / "data")
    generate(settings, SMALL)
    whole = {p: p.read_bytes() for p in settings.changes_path.glob("*/*.jsonl")}
    for path, data in whole.items():
        path.write_bytes(data[: len(data) // 2])  # a torn last line: read once complete
    ingest(settings)
    for path, data in whole.items():
        path.write_bytes(data)
    ingest(settings)
    publish_or_block(settings, write(settings))
    return settings


def _lineage(settings: Settings, mart: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, "lineage", mart, "--json", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _change_events(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The topic's change events as the source wrote them, with their offsets."""
    lines = [
        line
        for segment in sorted((settings.changes_path / topic).glob("*.jsonl"))
        for line in segment.read_bytes().splitlines()
    ]
    return [{"offset": i, **json.loads(line)} for i, line in enumerate(lines)]


def _source_positions(event: dict[str, Any]) -> tuple[int, int]:
    """PostgreSQL's positions of a change event, read from its envelope: the last commit
    LSN (first of ``source.sequence``, else the event's LSN) and the event's LSN."""
    source = event["value"]["source"]
    last_commit = json.loads(source["sequence"])[0] if source.get("sequence") else None
    return int(last_commit or source["lsn"]), int(source["lsn"])


def test_a_mart_row_leads_to_its_source_rows_positions(built: Settings) -> None:
    run = _lineage(built, MART)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["mart"] == MART
    lake = {(i["layer"], i["table"]): i for i in found["lake"]}
    assert {("silver", "order_item"), ("silver", "orders")} <= lake.keys()
    models = {m["model"] for m in found["models"]}
    assert {MART, "stg_oltp__order_items", "stg_oltp__orders"} <= models

    # the row: an order line whose last change the second lander run landed
    item = lake[("silver", "order_item")]
    assert len(item["lander_runs"]) == 2
    first_run, second_run = item["lander_runs"]
    events = _change_events(built, second_run["topic"])
    late = {
        e["key"]["order_item_id"]: e
        for e in events  # in offset order: the last change of each key wins
    }
    late_keys = {k for k, e in late.items() if e["offset"] >= second_run["first_offset"]}
    with connect(built) as marts:
        rows = marts.read_mart(MART, ["order_item_id", "order_id"])
    served = rows.filter(pc.is_in(rows.column("order_item_id"), value_set=_ints(late_keys)))
    assert served.num_rows > 0
    row = served.slice(0, 1).to_pylist()[0]
    key = row["order_item_id"]

    # the silver row at the version the build read (time travel), and its positions
    uri = built.table_uri("silver", "order_item")
    assert item["version"] is not None
    at_read = DeltaTable(uri, version=item["version"]).to_pyarrow_table(
        filters=[("order_item_id", "=", key)]
    )
    assert at_read.num_rows == 1
    commit_pos = int(at_read.column("_commit_pos")[0].as_py())
    event_pos = int(at_read.column("_event_pos")[0].as_py())

    # ... equal the source's change event of that row, and fall in the second run's ranges
    assert (commit_pos, event_pos) == _source_positions(late[key])
    assert second_run["first_offset"] <= late[key]["offset"] <= second_run["last_offset"]
    assert int(second_run["commit_pos"][0]) <= commit_pos <= int(second_run["commit_pos"][1])
    assert int(second_run["event_pos"][0]) <= event_pos <= int(second_run["event_pos"][1])
    # not the first run's: it ended before this event's offset
    assert first_run["last_offset"] < late[key]["offset"]
    assert second_run["silver_version"] <= item["version"]

    # the order of that line, through the other silver table
    orders = lake[("silver", "orders")]
    order = DeltaTable(built.table_uri("silver", "orders"), version=orders["version"])
    order_row = order.to_pyarrow_table(filters=[("order_id", "=", row["order_id"])])
    assert order_row.num_rows == 1
    order_events = {
        e["key"]["order_id"]: e for e in _change_events(built, orders["lander_runs"][0]["topic"])
    }
    assert (
        int(order_row.column("_commit_pos")[0].as_py()),
        int(order_row.column("_event_pos")[0].as_py()),
    ) == _source_positions(order_events[row["order_id"]])
    landed_by = [
        r
        for r in orders["lander_runs"]
        if r["first_offset"] <= order_events[row["order_id"]]["offset"] <= r["last_offset"]
    ]
    assert len(landed_by) == 1


def _ints(values: set[int]) -> pa.Array:
    return pa.array(sorted(values), pa.int64())


def test_the_record_is_openlineage_run_events(built: Settings) -> None:
    """The file transport's record: one RunEvent a line, each run started then ended, the
    lander's tables and dbt's models under their parents."""
    events = read_events(built.lineage_log)
    assert events
    states: dict[str, list[str]] = {}
    for event in events:
        uuid.UUID(event["run"]["runId"])
        assert event["schemaURL"].startswith("https://openlineage.io/spec/")
        assert "T" in event["eventTime"]
        states.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert all(s[0] == "START" and s[-1] in ("COMPLETE", "FAIL") for s in states.values())

    landed = [e for e in events if e["job"]["name"] == "lander.order_item"]
    assert [e["eventType"] for e in landed] == ["START", "COMPLETE"] * 2
    lander_runs = {e["run"]["runId"] for e in events if e["job"]["name"] == "lander"}
    for event in landed:
        assert event["run"]["facets"]["parent"]["run"]["runId"] in lander_runs
    complete = [e for e in landed if e["eventType"] == "COMPLETE"]
    outputs = [{o["name"].rsplit("/", 2)[-2] for o in e["outputs"]} for e in complete]
    # and the silver table's tail once it has one (docs/silver-layout.md)
    assert len(outputs) == 2
    assert all({"bronze", "silver"} <= o <= {"bronze", "silver", "silver_tail"} for o in outputs)
    silver_versions = [
        next(o for o in e["outputs"] if "/silver/" in o["name"])["facets"]["version"][
            "datasetVersion"
        ]
        for e in complete
    ]
    assert int(silver_versions[0]) < int(silver_versions[1])

    # dbt: the mart's model, its column lineage, its parent the build run
    model = next(
        e for e in events if e["job"]["name"] == f"dbt.{MART}" and e["eventType"] == "COMPLETE"
    )
    lineage = model["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert {f["name"].rsplit(".", 1)[-1] for f in lineage["order_id"]["inputFields"]} >= {
        "stg_oltp__order_items"
    }
    build = model["run"]["facets"]["parent"]
    assert build["job"]["name"] == "build"
    publication = next(
        e
        for e in events
        if e["job"]["name"] == "build" and e["run"]["runId"] == build["run"]["runId"]
        if e["eventType"] == "COMPLETE"
    )
    facet = publication["run"]["facets"]["lakehouse_publication"]
    assert facet["marts"][MART]["builtBy"] == facet["runId"]
    assert MART in {o["name"] for o in publication["outputs"]}


def test_an_unknown_mart_and_a_lake_without_lineage_are_one_line_errors(
    built: Settings, tmp_path: Path
) -> None:
    unknown = _lineage(built, "mart_nobody_built")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().startswith("error: unknown mart 'mart_nobody_built'")
    assert MART in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1

    empty = lake_settings(tmp_path / "empty")
    empty.root.mkdir(parents=True)
    none = _lineage(empty, MART)
    assert none.returncode == 1
    assert "no publication in the lineage record" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1


def test_the_tree_names_the_versions_and_positions(built: Settings) -> None:
    run = subprocess.run(
        [LAKEHOUSE, "lineage", MART, "--data-dir", str(built.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"COLUMNS": "200", "PATH": str(Path(sys.executable).parent)},
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(_lineage(built, MART).stdout)
    item = next(i for i in found["lake"] if i["table"] == "order_item" and i["layer"] == "silver")
    assert f"silver.order_item at version {item['version']}" in run.stdout
    assert "2 lander runs" in run.stdout
    assert str(item["lander_runs"][-1]["commit_pos"][1]) in run.stdout


def test_after_a_blocked_run_a_data_mart_leads_to_the_run_whose_data_is_served(
    built: Settings, tmp_path: Path
) -> None:
    """A blocked run publishes only the quality marts: the data marts it did not serve
    still lead to the last good build run, not to the blocked one."""
    settings = lake_settings(tmp_path / "data")
    settings.lineage_log.parent.mkdir(parents=True)
    shutil.copy(built.lineage_log, settings.lineage_log)
    good = mart_lineage(settings, MART)
    with connect(built) as marts:
        served = marts.publication()
    assert served is not None and good.build_run == served.run_id
    published(
        settings,
        "20991231T000000Z-blocked",
        outcome="blocked",
        data_run_id=good.build_run,
        rows=served.rows,
        refreshed=("mart_data_quality", "mart_pipeline_health"),
    )
    after = mart_lineage(settings, MART)
    assert after.publication_id == "20991231T000000Z-blocked"
    assert after.outcome == "blocked"
    assert after.build_run == good.build_run
    assert [i.version for i in after.lake] == [i.version for i in good.lake]
    with pytest.raises(LineageError, match="built before lineage was recorded"):
        mart_lineage(settings, "mart_data_quality")  # the blocked run built it: no dbt events
