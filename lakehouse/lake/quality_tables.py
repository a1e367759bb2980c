"""The tables of the lake's ``quality`` layer: every check of every gate run, and every
run. The gate (``lakehouse.quality.history``) writes them; dbt reads them as the source
``quality`` and builds ``mart_data_quality`` and ``mart_pipeline_health`` from them;
Trino registers them with the other layers. Beside them, ``table_maintenance``: what each
run of ``lakehouse maintain`` did to each table and log (``lakehouse.lake.maintenance``
writes it; dbt builds ``mart_table_maintenance``).

Their schemas live with the lake, not the gate, because the lander creates them too
(empty, before the first build) so that the dbt sources always resolve.
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.lake import delta
from lakehouse.settings import Settings

LAYER = "quality"
CHECKS = "check_results"
RUNS = "pipeline_runs"
MAINTENANCE = "table_maintenance"

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

MAINTENANCE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),  # when the step started
        pa.field("layer", pa.string(), nullable=False),  # a lake layer, `changes` or `kafka`
        pa.field("table_name", pa.string(), nullable=False),  # a table, or a topic
        # compact | checkpoint | vacuum | trim | none (nothing was due)
        pa.field("action", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        # data files (segments of a log) before and after the step
        pa.field("files_before", pa.int64(), nullable=False),
        pa.field("files_after", pa.int64(), nullable=False),
        # bytes the current version reads, and bytes in storage (data files and log)
        pa.field("live_bytes_before", pa.int64(), nullable=False),
        pa.field("live_bytes_after", pa.int64(), nullable=False),
        pa.field("disk_bytes_before", pa.int64(), nullable=False),
        pa.field("disk_bytes_after", pa.int64(), nullable=False),
        # the table's version (a log's first offset kept) before and after
        pa.field("version_before", pa.int64(), nullable=False),
        pa.field("version_after", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
    ]
)


def ensure_tables(settings: Settings) -> None:
    """Create the tables, empty, when they do not exist yet."""
    options = settings.lake_storage_options
    for name, schema in (
        (CHECKS, CHECKS_SCHEMA),
        (RUNS, RUNS_SCHEMA),
        (MAINTENANCE, MAINTENANCE_SCHEMA),
    ):
        delta.ensure_table(settings.table_uri(LAYER, name), schema, options)  # a lander too
