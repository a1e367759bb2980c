"""Maintenance of everything that grows while the pipeline runs: the lake's Delta tables
(``lakehouse.lake.maintenance``), the change-event log and the Kafka change topics
(``lakehouse.cdc.trim``), each trimmed only of what has landed. What each run did is
recorded in the lake's ``quality.table_maintenance``, which dbt builds
``mart_table_maintenance`` from for the Data health dashboard. One run at a time per lake
(the ``maintain`` lease); the lander and a build go on meanwhile: Delta's commit protocol
keeps a compaction and a concurrent merge apart, and the retention keeps the files their
readers use.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lakehouse.cdc.trim import trim_change_log, trim_kafka
from lakehouse.lake import maintenance, quality_tables
from lakehouse.lake.maintenance import Policy, Record, Step
from lakehouse.lease import hold
from lakehouse.progress import Progress
from lakehouse.settings import Settings


@dataclass
class MaintenanceReport:
    run_id: str
    dry_run: bool
    policy: Policy
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def actions(self) -> list[Record]:
        """The records of steps that ran (or, in a dry run, would)."""
        return [r for r in self.records if r.action != "none"]


def maintain(
    settings: Settings,
    *,
    dry_run: bool = False,
    retention_hours: int | None = None,
    steps: Mapping[str, Sequence[Step]] | None = None,
    progress: Progress | None = None,
) -> MaintenanceReport:
    """Maintain every lake table, then trim the landed change events; record what was done
    (a dry run decides and records nothing). ``retention_hours``: instead of the setting,
    refused below ``maintenance_min_retention_hours``."""
    policy = Policy.from_settings(settings, retention_hours=retention_hours)
    report = MaintenanceReport(uuid.uuid4().hex, dry_run, policy)
    started = time.perf_counter()
    with hold(settings, "maintain"):
        if not dry_run:
            quality_tables.ensure_tables(settings)  # the history this run appends to
        report.records.extend(
            maintenance.maintain_lake(
                settings, policy, report.run_id, dry_run=dry_run, steps=steps, progress=progress
            )
        )
        report.records.extend(trim_change_log(settings, report.run_id, dry_run=dry_run))
        report.records.extend(trim_kafka(settings, report.run_id, dry_run=dry_run))
        if not dry_run:
            maintenance.record(settings, report.records)
    report.seconds = time.perf_counter() - started
    return report
