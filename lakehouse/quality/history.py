"""The history of the gate: every check of every run, and every run, appended to the
lake's ``quality`` tables (their schemas: ``lakehouse.lake.quality_tables``). dbt reads
them as the source ``quality`` and builds the marts ``mart_data_quality`` and
``mart_pipeline_health`` from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.lake import delta
from lakehouse.lake.quality_tables import CHECKS, CHECKS_SCHEMA, LAYER, RUNS, RUNS_SCHEMA
from lakehouse.quality import CheckResult
from lakehouse.settings import Settings


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    profile: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    checks: int
    errors: int
    warnings: int
    served_run_id: str | None
    newest_source_commit: datetime | None
    published_at: datetime | None
    freshness_seconds: float | None
    dead_letters: int
    build_seconds: float
    audit_seconds: float


def record(
    settings: Settings, run: RunRecord, checks: list[CheckResult], checked_at: datetime
) -> None:
    """Append a run and its checks. The run is written last: a run row means its checks
    are all there."""
    options = settings.lake_storage_options
    rows = [
        {
            "run_id": run.run_id,
            "checked_at": checked_at,
            "check_name": c.check,
            "kind": c.kind,
            "layer": c.layer,
            "table_name": c.table,
            "severity": c.severity,
            "passed": c.passed,
            "observed": c.observed,
            "expected": c.expected,
            "detail": c.detail,
        }
        for c in checks
    ]
    if rows:
        write_deltalake(
            settings.table_uri(LAYER, CHECKS),
            pa.Table.from_pylist(rows, schema=CHECKS_SCHEMA),
            mode="append",
            storage_options=options or None,
        )
    write_deltalake(
        settings.table_uri(LAYER, RUNS),
        pa.Table.from_pylist([run.__dict__], schema=RUNS_SCHEMA),
        mode="append",
        schema_mode="merge",  # a table from an older release lacks newer columns
        storage_options=options or None,
    )


def last_served_run(settings: Settings) -> str | None:
    """The run whose data marts are served now (None before the first publication)."""
    table = delta.open_table(settings.table_uri(LAYER, RUNS), settings.lake_storage_options)
    if table is None:
        return None
    runs = table.to_pyarrow_table(columns=["finished_at", "served_run_id"])
    if runs.num_rows == 0:
        return None
    latest = runs.sort_by([("finished_at", "descending")]).slice(0, 1).to_pylist()[0]
    served = latest["served_run_id"]
    return str(served) if served else None
