"""The commit-to-mart freshness SLO's tables in the lake's ``quality`` layer.

* ``freshness_samples``: the served marts' freshness, sampled by each gate run and by the
  lander's follow loop (at most once a minute): now minus the newest source commit the
  served marts hold. dbt reads it as the source ``quality.freshness_samples`` and builds
  ``mart_freshness_slo`` (good minutes, error budget, burn rate) from it.
* ``slo_states``: the SLO's state after each gate run (``ok``, ``burning``, ``exhausted``),
  read from that mart; the gate alerts when it differs from the previous one, so an alert
  goes out once per crossing, never at every run.

The schemas live with the lake because the gate, the lander and the metrics read them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.lake import delta
from lakehouse.lake.quality_tables import LAYER, RUNS
from lakehouse.settings import Settings

SAMPLES = "freshness_samples"
STATES = "slo_states"
_TS = pa.timestamp("us", tz="UTC")

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("sampled_at", _TS, nullable=False),
        pa.field("sampled_by", pa.string(), nullable=False),  # gate | lander
        # the newest source commit in the served marts, and now minus it
        pa.field("served_source_commit", _TS, nullable=False),
        pa.field("freshness_seconds", pa.float64(), nullable=False),
    ]
)

STATES_SCHEMA = pa.schema(
    [
        pa.field("decided_at", _TS, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | burning | exhausted
        pa.field("budget_remaining", pa.float64(), nullable=False),
        pa.field("burn_rate", pa.float64(), nullable=False),
        pa.field("alerted", pa.bool_(), nullable=False),
    ]
)


def ensure_tables(settings: Settings) -> None:
    for name, schema in ((SAMPLES, SAMPLES_SCHEMA), (STATES, STATES_SCHEMA)):
        delta.ensure_table(settings.table_uri(LAYER, name), schema, settings.lake_storage_options)


def served_source_commit(settings: Settings) -> datetime | None:
    """The newest source commit in the marts served now: that of the last run that
    published its data marts (None before the first publication)."""
    table = delta.open_table(settings.table_uri(LAYER, RUNS), settings.lake_storage_options)
    if table is None:
        return None
    runs = table.to_pyarrow_table(columns=["published_at", "newest_source_commit"])
    published = [r for r in runs.to_pylist() if r["published_at"] and r["newest_source_commit"]]
    if not published:
        return None
    newest: datetime = max(published, key=lambda r: r["published_at"])["newest_source_commit"]
    return newest


def sample(settings: Settings, by: str, now: datetime | None = None) -> float | None:
    """Append one sample of the served marts' freshness; its value (None, and nothing
    written, before the first publication)."""
    served = served_source_commit(settings)
    if served is None:
        return None
    now = now or datetime.now(UTC)
    seconds = max(0.0, (now - served).total_seconds())
    row = {
        "sampled_at": now,
        "sampled_by": by,
        "served_source_commit": served,
        "freshness_seconds": seconds,
    }
    _append(settings, SAMPLES, [row], SAMPLES_SCHEMA)
    return seconds


def last_slo_state(settings: Settings) -> dict[str, Any] | None:
    """The SLO's state after the latest gate run (None before the first)."""
    table = delta.open_table(settings.table_uri(LAYER, STATES), settings.lake_storage_options)
    if table is None:
        return None
    states = table.to_pyarrow_table()
    if states.num_rows == 0:
        return None
    return states.sort_by([("decided_at", "descending")]).slice(0, 1).to_pylist()[0]


def record_slo_state(settings: Settings, state: dict[str, Any]) -> None:
    _append(settings, STATES, [state], STATES_SCHEMA)


def _append(settings: Settings, name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    write_deltalake(  # a blind append: a concurrent one (gate and lander) does not conflict
        settings.table_uri(LAYER, name),
        pa.Table.from_pylist(rows, schema=schema),
        mode="append",
        storage_options=settings.lake_storage_options or None,
    )
