"""The lander's lineage: per table landed, the source topic and the positions it read, to
the bronze and silver tables at the Delta versions the run left them at.

The lander calls it once: ``with landing(settings) as run: return run.landed(report)``.
A run that landed nothing (``lakehouse ingest --follow`` polls every second) emits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from openlineage.client.event_v2 import RunState
from openlineage.client.facet_v2 import BaseFacet, dataset_version_dataset

from lakehouse.lake import delta
from lakehouse.lake.silver import tail_uri
from lakehouse.lineage.events import (
    LANDER_JOB,
    DeltaVersionDatasetFacet,
    LakehouseRunFacet,
    RunRef,
    SourcePositionsInputFacet,
    emit,
    error_facets,
    lake_dataset,
    landed_table_job,
    new_run_id,
    now,
    source_dataset,
)
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


class LandedTopic(Protocol):
    """What the lander reports of one topic (``lakehouse.cdc.lander.TopicReport``)."""

    topic: str
    table: str
    first_offset: int
    last_offset: int
    events: int
    landed: int


class Landing(Protocol):
    @property
    def topics(self) -> Sequence[LandedTopic]: ...

    @property
    def applied(self) -> Sequence[object]: ...


R = TypeVar("R", bound=Landing)


class LanderRun:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = now()
        self.ref = RunRef(settings.lineage_namespace, LANDER_JOB, new_run_id())

    def landed(self, report: R) -> R:
        """Emit the run's events (when it landed anything) and return ``report``."""
        topics = [t for t in report.topics if t.events > 0]
        if not topics:
            return report
        emit(self.settings, RunState.START, self.ref, at=self.started)
        try:
            for topic in topics:
                self._table(topic, applied=bool(report.applied))
        except Exception as exc:  # what landed stays landed: lineage never fails a run
            log.warning("lineage of the lander run not recorded: %s", " ".join(str(exc).split()))
        emit(self.settings, RunState.COMPLETE, self.ref)
        return report

    def failed(self, exc: BaseException) -> None:
        emit(self.settings, RunState.START, self.ref, at=self.started)
        emit(self.settings, RunState.FAIL, self.ref, run_facets=error_facets(exc))

    def _table(self, topic: LandedTopic, *, applied: bool) -> None:
        settings = self.settings
        ref = RunRef(settings.lineage_namespace, landed_table_job(topic.table), new_run_id())
        bronze = delta.open_table(
            settings.table_uri("bronze", topic.table), settings.lake_storage_options
        )
        positions = _positions(bronze, topic.first_offset, topic.last_offset)
        namespace, name = source_dataset(settings, topic.topic)
        source = SourcePositionsInputFacet(
            topic=topic.topic,
            table=topic.table,
            firstOffset=topic.first_offset,
            lastOffset=topic.last_offset,
            events=topic.events,
            landed=topic.landed,
            commitPosMin=positions[0][0],
            commitPosMax=positions[0][1],
            eventPosMin=positions[1][0],
            eventPosMax=positions[1][1],
        )
        outputs = [_versioned(settings, "bronze", topic.table, bronze)]
        if applied:
            silver = delta.open_table(
                settings.table_uri("silver", topic.table), settings.lake_storage_options
            )
            outputs.append(_versioned(settings, "silver", topic.table, silver))
            # a micro-batch lands in the table's tail, folded into it later
            # (docs/silver-layout.md): the tail's version names what this run applied
            tail = delta.open_table(
                tail_uri(settings.table_uri("silver", topic.table)), settings.lake_storage_options
            )
            if tail is not None:
                outputs.append(_versioned(settings, "silver_tail", topic.table, tail))
        facets = {"lakehouse": LakehouseRunFacet(topic.table, {"topic": topic.topic})}
        emit(settings, RunState.START, ref, at=self.started, parent=self.ref, run_facets=facets)
        emit(
            settings,
            RunState.COMPLETE,
            ref,
            inputs=[(namespace, name, {"lakehouse_sourcePositions": source})],
            outputs=outputs,
            parent=self.ref,
            run_facets=facets,
        )


Range = tuple[str | None, str | None]


def _positions(table: DeltaTable | None, first: int, last: int) -> tuple[Range, Range]:
    """The smallest and largest ``_commit_pos`` and ``_event_pos`` of the bronze rows of
    offsets ``first..last`` (file statistics prune the rest of the table)."""
    if table is None or last < first:
        return (None, None), (None, None)
    rows = table.to_pyarrow_dataset().to_table(
        columns=["_commit_pos", "_event_pos"],
        filter=(ds.field("_offset") >= first) & (ds.field("_offset") <= last),
    )
    if rows.num_rows == 0:
        return (None, None), (None, None)
    found = []
    for column in ("_commit_pos", "_event_pos"):
        bounds = pc.min_max(rows.column(column))
        found.append((_text(bounds["min"].as_py()), _text(bounds["max"].as_py())))
    return found[0], found[1]


def _text(value: object) -> str | None:
    """A decimal(38, 0) position as its digits (JSON numbers lose precision past 2^53)."""
    return None if value is None else str(int(value))  # type: ignore[call-overload]


def _versioned(
    settings: Settings, layer: str, table: str, delta_table: DeltaTable | None
) -> tuple[str, str, dict[str, BaseFacet]]:
    namespace, name = lake_dataset(settings, layer, table)
    version = None if delta_table is None else int(delta_table.version())
    facets: dict[str, BaseFacet] = {"lakehouse_delta": DeltaVersionDatasetFacet(version)}
    if version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(str(version))
    return namespace, name, facets


@contextmanager
def landing(settings: Settings) -> Iterator[LanderRun]:
    """A lander run: its events once it ends (:meth:`LanderRun.landed`), FAIL if it raises."""
    run = LanderRun(settings)
    try:
        yield run
    except Exception as exc:
        run.failed(exc)
        raise
