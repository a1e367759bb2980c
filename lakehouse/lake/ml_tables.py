"""The tables of the lake's ``ml`` layer: what the model jobs write for dbt to publish.

* ``demand_forecasts``: every scoring run's forecasts, appended (one row per product x
  week ahead x scoring run). ``mart_demand_forecast`` serves the latest run's.
* ``warehouse_forecasts``: the same runs' forecasts split per product x warehouse, with
  their own intervals (one row per product x warehouse x week ahead x scoring run).
  ``mart_replenishment`` reads the latest run's.
* ``forecast_backtests``: the rolling-origin backtest of every trained model version,
  appended (one row per model version x product x origin week x target week).
  ``mart_forecast_backtest`` serves the backtest of the version that scored last.
* ``model_monitoring``: the drift every scoring run measured, appended (one row per
  scoring run x feature: its PSI between the model's training window and the latest
  weeks). ``mart_model_monitoring`` serves them all.

The model jobs append; dbt reads the tables as the source ``ml`` and publishes the marts
through the same write-audit-publish gate as every other mart. The schemas live with the
lake, like the quality tables, because the tables are created empty before the first
build (by the lander and the gate) so that the dbt sources always resolve, whether or not
a model has run yet.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.lake import delta
from lakehouse.settings import Settings

LAYER = "ml"
FORECASTS = "demand_forecasts"
WAREHOUSE_FORECASTS = "warehouse_forecasts"
BACKTESTS = "forecast_backtests"
MONITORING = "model_monitoring"

_TS = pa.timestamp("us", tz="UTC")

FORECASTS_SCHEMA = pa.schema(
    [
        pa.field("scoring_run_id", pa.string(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("week_start_date", pa.date32(), nullable=False),  # ISO week, Monday
        pa.field("forecast_units", pa.float64(), nullable=False),
        pa.field("lower_80", pa.float64(), nullable=False),
        pa.field("upper_80", pa.float64(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        # the end of the last complete week the features describe: nothing later was read
        pa.field("features_as_of", _TS, nullable=False),
        pa.field("scored_at", _TS, nullable=False),
    ]
)

WAREHOUSE_FORECASTS_SCHEMA = pa.schema(
    [
        pa.field("scoring_run_id", pa.string(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("warehouse_id", pa.string(), nullable=False),
        pa.field("week_start_date", pa.date32(), nullable=False),
        pa.field("warehouse_share", pa.float64(), nullable=False),  # of the product's units
        pa.field("forecast_units", pa.float64(), nullable=False),
        pa.field("lower_80", pa.float64(), nullable=False),
        pa.field("upper_80", pa.float64(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("scored_at", _TS, nullable=False),
    ]
)

BACKTESTS_SCHEMA = pa.schema(
    [
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("origin_week", pa.date32(), nullable=False),  # last week known at the origin
        pa.field("week_start_date", pa.date32(), nullable=False),  # the target week
        pa.field("forecast_units", pa.float64(), nullable=False),
        pa.field("lower_80", pa.float64(), nullable=False),
        pa.field("upper_80", pa.float64(), nullable=False),
        pa.field("actual_units", pa.float64(), nullable=False),
        pa.field("recorded_at", _TS, nullable=False),
    ]
)

MONITORING_SCHEMA = pa.schema(
    [
        pa.field("scoring_run_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),  # the registered model
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("feature", pa.string(), nullable=False),  # a feature, or the target
        pa.field("psi", pa.float64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | alert | retrain
        pa.field("reference_start", pa.date32(), nullable=False),  # the training window
        pa.field("reference_end", pa.date32(), nullable=False),
        pa.field("current_start", pa.date32(), nullable=False),  # the latest weeks
        pa.field("current_end", pa.date32(), nullable=False),
        pa.field("scored_at", _TS, nullable=False),
    ]
)

SCHEMAS = {
    FORECASTS: FORECASTS_SCHEMA,
    WAREHOUSE_FORECASTS: WAREHOUSE_FORECASTS_SCHEMA,
    BACKTESTS: BACKTESTS_SCHEMA,
    MONITORING: MONITORING_SCHEMA,
}


def ensure_tables(settings: Settings) -> None:
    """Create the tables, empty, when they do not exist yet."""
    for name, schema in SCHEMAS.items():
        delta.ensure_table(settings.table_uri(LAYER, name), schema, settings.lake_storage_options)


def append(settings: Settings, name: str, rows: pa.Table) -> int:
    """Append ``rows`` (any column order, castable types) to the table ``name`` in one
    Delta commit; the table's version after it."""
    schema = SCHEMAS[name]
    ensure_tables(settings)
    uri = settings.table_uri(LAYER, name)
    options = settings.lake_storage_options
    write_deltalake(
        uri, rows.select(schema.names).cast(schema), mode="append", storage_options=options or None
    )
    table = delta.open_table(uri, options)
    assert table is not None
    return int(table.version())
