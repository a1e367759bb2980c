"""Where a published mart came from, read back from the lineage record
(``<data_dir>/lineage/events.jsonl``): the publication that serves it, the build run whose
data it holds, the dbt models between it and the lake, the lake tables at the Delta
versions those models read, and the lander runs (source positions) behind each version.

A lake table at version V holds what every lander run that committed it at a version up to
V landed: those runs are its sources, with the offsets and source positions they read.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.exceptions import LineageError
from lakehouse.lineage.events import BUILD_JOB, dbt_job, run_id_for
from lakehouse.settings import Settings


@dataclass
class LanderRun:
    run_id: str
    landed_at: str
    topic: str
    first_offset: int
    last_offset: int
    events: int
    landed: int
    commit_pos: tuple[str | None, str | None]
    event_pos: tuple[str | None, str | None]
    bronze_version: int | None
    silver_version: int | None


@dataclass
class LakeInput:
    layer: str
    table: str
    namespace: str
    name: str
    version: int | None  # the Delta version the build read
    version_at_start: int | None
    version_at_end: int | None
    read_by: list[str] = field(default_factory=list)  # the models that read it
    lander_runs: list[LanderRun] = field(default_factory=list)

    @property
    def offsets(self) -> tuple[int, int] | None:
        runs = self.lander_runs
        if not runs:
            return None
        return min(r.first_offset for r in runs), max(r.last_offset for r in runs)


@dataclass
class Model:
    model: str
    run_id: str
    status: str
    finished_at: str
    inputs: list[str]


@dataclass
class MartLineage:
    mart: str
    publication_id: str
    published_at: str
    outcome: str
    build_run: str  # the gate run whose build the served mart holds
    models: list[Model]
    lake: list[LakeInput]

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for item, lake in zip(found["lake"], self.lake, strict=True):
            item["offsets"] = lake.offsets
        return found


def read_events(path: Path) -> list[dict[str, Any]]:
    """The run events of the record, in the order written (a torn line is skipped)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def mart_lineage(settings: Settings, mart: str) -> MartLineage:
    """The lineage of ``mart`` as the last publication serves it."""
    events = read_events(settings.lineage_log)
    publications = [
        e
        for e in events
        if e["job"]["name"] == BUILD_JOB and "lakehouse_publication" in e["run"].get("facets", {})
    ]
    if not publications:
        raise LineageError(
            f"no publication in the lineage record ({settings.lineage_log}) yet: run "
            "`lakehouse ingest` and `lakehouse build` first"
        )
    last = publications[-1]
    publication = last["run"]["facets"]["lakehouse_publication"]
    served = publication["marts"]
    if mart not in served:
        raise LineageError(
            f"unknown mart {mart!r}: the publication {publication['runId']} serves "
            f"{', '.join(sorted(served))}"
        )
    build_run = served[mart]["builtBy"]
    if build_run is None:
        raise LineageError(f"mart {mart!r} is served without a recorded build run")
    models = _models(events, build_run)
    if dbt_job(mart) not in models:
        raise LineageError(
            f"no lineage of mart {mart!r} for its build run {build_run}: it was built before "
            "lineage was recorded; run `lakehouse build`"
        )
    walked, lake = _walk(models, mart)
    for item in lake.values():
        item.lander_runs = _lander_runs(events, item)
    return MartLineage(
        mart=mart,
        publication_id=publication["runId"],
        published_at=last["eventTime"],
        outcome=publication["outcome"],
        build_run=build_run,
        models=walked,
        lake=sorted(lake.values(), key=lambda i: (i.layer, i.table)),
    )


def _models(events: list[dict[str, Any]], build_run: str) -> dict[str, dict[str, Any]]:
    """The final event of each dbt model run of the build run, by job name."""
    parent = run_id_for(build_run)
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        facets = event["run"].get("facets", {})
        if (
            event["job"]["name"].startswith("dbt.")
            and event.get("eventType") in ("COMPLETE", "FAIL")
            and facets.get("parent", {}).get("run", {}).get("runId") == parent
        ):
            found[event["job"]["name"]] = event
    return found


def _walk(
    models: dict[str, dict[str, Any]], mart: str
) -> tuple[list[Model], dict[tuple[str, str], LakeInput]]:
    """From the mart's model up through its parents to the lake tables."""
    by_output = {
        (o["namespace"], o["name"]): event
        for event in models.values()
        for o in event.get("outputs", [])
    }
    seen: set[str] = set()
    walked: list[Model] = []
    lake: dict[tuple[str, str], LakeInput] = {}
    queue = deque([models[dbt_job(mart)]])
    while queue:
        event = queue.popleft()
        job = event["job"]["name"]
        if job in seen:
            continue
        seen.add(job)
        model = job.removeprefix("dbt.")
        names = []
        for dataset in event.get("inputs", []):
            key = (dataset["namespace"], dataset["name"])
            names.append(dataset["name"])
            if key in by_output:
                queue.append(by_output[key])
                continue
            delta = dataset.get("facets", {}).get("lakehouse_delta")
            if delta is None:
                continue
            if key not in lake:
                layer, table = dataset["name"].rstrip("/").split("/")[-2:]
                lake[key] = LakeInput(
                    layer=layer,
                    table=table,
                    namespace=key[0],
                    name=key[1],
                    version=delta.get("version"),
                    version_at_start=delta.get("versionAtStart"),
                    version_at_end=delta.get("versionAtEnd"),
                )
            lake[key].read_by.append(model)
        walked.append(
            Model(
                model=model,
                run_id=event["run"]["runId"],
                status=event["eventType"],
                finished_at=event["eventTime"],
                inputs=names,
            )
        )
    return walked, lake


def _lander_runs(events: list[dict[str, Any]], item: LakeInput) -> list[LanderRun]:
    """The lander runs that committed ``item``'s table at a version up to the one read
    (when the read version is unknown, up to the version at the end of the build)."""
    limit = item.version if item.version is not None else item.version_at_end
    runs = []
    for event in events:
        if not event["job"]["name"].startswith("lander.") or event.get("eventType") != "COMPLETE":
            continue
        versions = {
            o["name"]: (o.get("facets", {}).get("lakehouse_delta") or {}).get("version")
            for o in event.get("outputs", [])
            if o["namespace"] == item.namespace
        }
        committed = versions.get(item.name)
        if committed is None or limit is None or committed > limit:
            continue
        source = event["inputs"][0]["inputFacets"]["lakehouse_sourcePositions"]
        layer_versions = {name.rstrip("/").split("/")[-2]: v for name, v in versions.items()}
        runs.append(
            LanderRun(
                run_id=event["run"]["runId"],
                landed_at=event["eventTime"],
                topic=source["topic"],
                first_offset=source["firstOffset"],
                last_offset=source["lastOffset"],
                events=source["events"],
                landed=source["landed"],
                commit_pos=(source.get("commitPosMin"), source.get("commitPosMax")),
                event_pos=(source.get("eventPosMin"), source.get("eventPosMax")),
                bronze_version=layer_versions.get("bronze"),
                silver_version=layer_versions.get("silver"),
            )
        )
    return runs
