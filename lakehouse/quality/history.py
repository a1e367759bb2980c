"""The history of the gate: every check of every run, and every run, as Delta tables in
the lake's ``quality`` layer. dbt reads them as the source ``quality`` and builds the
marts ``mart_data_quality`` and ``mart_pipeline_health`` from them.

Both tables exist (empty) before the first build, so that the dbt sources always resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.lake import delta
from lakehouse.quality import CheckResult
from lakehouse.settings import Settings

LAYER = "quality"
CHECKS = "check_results"
RUNS = "pipeline_runs"

_TS = pa.timestamp("us", tz="UTC")

CHECKS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("checked_at", _TS, nullable=False),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("layer", pa.string(), nullable=False),
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("observed", pa.string()),
        pa.field("expected", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("profile", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        # published | published_with_warnings | blocked
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("checks", pa.int64(), nullable=False),
        pa.field("errors", pa.int64(), nullable=False),  # failed error-level checks
        pa.field("warnings", pa.int64(), nullable=False),  # failed warn-level checks
        # the run whose data marts are served after this one (itself when it published)
        pa.field("served_run_id", pa.string()),
        pa.field("newest_source_commit", _TS),  # newest source commit in silver
        pa.field("published_at", _TS),
        # freshness: published_at minus newest_source_commit (null when blocked)
        pa.field("freshness_seconds", pa.float64()),
        pa.field("dead_letters", pa.int64()),  # events in the dead-letter table
        pa.field("build_seconds", pa.float64(), nullable=False),
        pa.field("audit_seconds", pa.float64(), nullable=False),
    ]
)


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


def ensure_tables(settings: Settings) -> None:
    """Create the two tables, empty, when they do not exist yet."""
    options = settings.lake_storage_options
    for name, schema in ((CHECKS, CHECKS_SCHEMA), (RUNS, RUNS_SCHEMA)):
        delta.ensure_table(settings.table_uri(LAYER, name), schema, options)  # a lander too


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
