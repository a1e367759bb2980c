"""The lineage transports: the JSON-lines file always, an OpenLineage HTTP endpoint when
``lineage_url`` is set (a small local receiver here), and one that is down costs seconds,
never the pipeline. And the parent run a flow gives the events emitted inside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from openlineage.client.event_v2 import RunState

from lakehouse.lineage.events import RunRef, emit, new_run_id, parent_run
from lakehouse.lineage.query import read_events
from lakehouse.settings import Settings, load_settings
from tests.support.ports import free_port
from tests.support.webhook import webhook

__all__ = ["webhook"]  # the fixture


def _settings(data_dir: Path, url: str | None = None) -> Settings:
    return load_settings(data_dir=data_dir, lineage_url=url)


def _ref(settings: Settings, job: str = "test.job") -> RunRef:
    return RunRef(settings.lineage_namespace, job, new_run_id())


def test_the_file_transport_appends_one_run_event_a_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    ref = _ref(settings)
    emit(settings, RunState.START, ref)
    emit(settings, RunState.COMPLETE, ref)
    lines = settings.lineage_log.read_text().splitlines()
    assert len(lines) == 2
    events = [json.loads(line) for line in lines]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {ref.run_id}
    assert all(
        e["job"] == {"namespace": "lakehouse", "name": "test.job", "facets": e["job"]["facets"]}
        for e in events
    )
    assert events[0]["job"]["facets"]["jobType"]["processingType"] == "BATCH"
    assert events[0]["producer"] == "urn:lakehouse:lineage"


def test_the_http_transport_posts_the_same_events(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = _settings(tmp_path, url.removesuffix("/alerts") + "/")
    ref = _ref(settings)
    emit(settings, RunState.START, ref)
    emit(settings, RunState.COMPLETE, ref)
    assert [e["eventType"] for e in received] == ["START", "COMPLETE"]
    assert received == read_events(settings.lineage_log)  # the file has them too


def test_an_endpoint_that_is_down_costs_seconds_not_the_run(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"http://127.0.0.1:{free_port()}/")
    began = time.monotonic()
    emit(settings, RunState.START, _ref(settings))  # logged, not raised
    assert time.monotonic() - began < 15
    assert [e["eventType"] for e in read_events(settings.lineage_log)] == ["START"]


def test_events_inside_a_flow_run_name_it_as_their_parent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    flow_run = new_run_id()
    inner = _ref(settings, "lander")
    with parent_run(settings, "flows.ingest", flow_run):
        emit(settings, RunState.START, inner)
    emit(settings, RunState.COMPLETE, inner)  # outside the flow: no parent
    with pytest.raises(RuntimeError), parent_run(settings, "flows.transform", new_run_id()):
        raise RuntimeError("dbt failed")
    events = read_events(settings.lineage_log)
    flow, started, ended, completed, failed_start, failed = events
    assert (flow["job"]["name"], flow["eventType"]) == ("flows.ingest", "START")
    assert "parent" not in flow["run"]["facets"]
    assert started["run"]["facets"]["parent"]["run"]["runId"] == flow_run
    assert started["run"]["facets"]["parent"]["job"]["name"] == "flows.ingest"
    assert (ended["job"]["name"], ended["eventType"]) == ("flows.ingest", "COMPLETE")
    assert "parent" not in completed["run"]["facets"]
    assert failed_start["eventType"] == "START"
    assert failed["eventType"] == "FAIL"
    assert failed["run"]["facets"]["errorMessage"]["message"] == "dbt failed"
