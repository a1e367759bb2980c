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
* ``client_recommendations``: every propositions scoring run's top-N per client,
  appended (one row per scoring run x client x rank). ``mart_client_recommendations``
  serves the latest run's.
* ``recommendation_backtests``: the time-split backtest of every trained propositions
  version, appended (one row per model version x cutoff x client x rank: what the
  version, trained on the data before the cutoff, proposed).
  ``mart_recommendation_backtest`` serves the backtest of the version that scored last.
* ``recommendation_metrics``: the same backtests' metrics, for the version and for every
  baseline it was measured against, overall and per client segment (one row per model
  version x cutoff x recommender x segment). ``mart_recommendation_metrics`` serves
  those of the version that scored last.

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
RECOMMENDATIONS = "client_recommendations"
RECOMMENDATION_BACKTESTS = "recommendation_backtests"
RECOMMENDATION_METRICS = "recommendation_metrics"

# why a product is proposed to a client: the ``reason`` of a recommendation
REASONS = (
    "bought by clients like you",  # the collaborative part ranked it
    "new in a category you buy",  # the content part: a product too new to have buyers
    "you buy it regularly",  # the client's own repeat purchases
    "popular with clients like you",  # popularity in the client's segment and region
)
# the segment of the metrics computed over every client
ALL_SEGMENTS = "all"

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

RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        pa.field("scoring_run_id", pa.string(), nullable=False),
        pa.field("client_id", pa.int64(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),  # 1 = the best proposition
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),  # higher is better, per run
        pa.field("reason", pa.string(), nullable=False),  # one of REASONS
        pa.field("model_name", pa.string(), nullable=False),  # the registered model
        pa.field("model_version", pa.string(), nullable=False),
        # the purchases read end here: nothing later was known to the scoring run
        pa.field("features_as_of", _TS, nullable=False),
        pa.field("scored_at", _TS, nullable=False),
    ]
)

RECOMMENDATION_BACKTESTS_SCHEMA = pa.schema(
    [
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("cutoff_date", pa.date32(), nullable=False),  # trained on the days before
        pa.field("client_id", pa.int64(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("recorded_at", _TS, nullable=False),
    ]
)

RECOMMENDATION_METRICS_SCHEMA = pa.schema(
    [
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("cutoff_date", pa.date32(), nullable=False),
        pa.field("horizon_days", pa.int32(), nullable=False),  # purchases counted as hits
        pa.field("recommender", pa.string(), nullable=False),  # the model, or a baseline
        pa.field("is_baseline", pa.bool_(), nullable=False),
        pa.field("segment", pa.string(), nullable=False),  # a client segment, or ALL_SEGMENTS
        pa.field("clients", pa.int64(), nullable=False),  # clients who bought after the cutoff
        pa.field("map_at_10", pa.float64(), nullable=False),
        pa.field("ndcg_at_10", pa.float64(), nullable=False),
        pa.field("recall_at_10", pa.float64(), nullable=False),
        pa.field("catalogue_coverage", pa.float64(), nullable=False),  # share of products proposed
        pa.field("recorded_at", _TS, nullable=False),
    ]
)

SCHEMAS = {
    FORECASTS: FORECASTS_SCHEMA,
    WAREHOUSE_FORECASTS: WAREHOUSE_FORECASTS_SCHEMA,
    BACKTESTS: BACKTESTS_SCHEMA,
    MONITORING: MONITORING_SCHEMA,
    RECOMMENDATIONS: RECOMMENDATIONS_SCHEMA,
    RECOMMENDATION_BACKTESTS: RECOMMENDATION_BACKTESTS_SCHEMA,
    RECOMMENDATION_METRICS: RECOMMENDATION_METRICS_SCHEMA,
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
