"""The demand jobs as the pipeline runs them: read the panel from the feature store, train
(backtest, MLflow run, registry, promotion gate) or score with the champion, and append
what scoring produced to the lake's ``ml`` tables, for dbt to publish through the gate.

The feature tables must be published and exported, and the Feast repository applied,
first (``lakehouse features apply``); the flows do it in that order.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from lakehouse.exceptions import ForecastError
from lakehouse.lake import delta, ml_tables
from lakehouse.progress import Progress
from lakehouse.quality.alerts import send_alert
from lakehouse.quality.history import last_served_run
from lakehouse.settings import Settings
from ml import tracking
from ml.demand import drift, warehouse
from ml.demand.backtest import FORECAST, STEP
from ml.demand.dataset import AnnouncedFuture, Dataset, load_panel
from ml.demand.intervals import LOWER, UPPER, Calibration
from ml.demand.panel import DS, ID, WEEK
from ml.demand.score import score
from ml.demand.train import REGISTERED_MODEL, WAREHOUSE_CALIBRATION, TrainResult, train

# the source tables the demand features are built from: their Delta versions are the
# data version of a training run
SOURCE_TABLES = ("order_item", "orders", "product", "promotion", "stock")


@dataclass(frozen=True)
class Scoring:
    run_id: str
    model_version: str
    model_name: str
    forecasts: int
    warehouse_forecasts: int
    backtest_rows: int  # appended now (0 when the version's backtest was recorded already)
    features_as_of: datetime
    worst_drift: tuple[str, float]  # the feature whose PSI is highest, and its PSI
    retrain: bool  # a PSI above drift_retrain_psi: the model should be trained again


def data_version(settings: Settings, dataset: Dataset) -> dict[str, Any]:
    """What a training run read: the publication, the feature service, and the Delta
    version of each silver table the features come from."""
    versions: dict[str, Any] = {"publication_run_id": last_served_run(settings)}
    for table in SOURCE_TABLES:
        found = delta.open_table(settings.table_uri("silver", table), settings.lake_storage_options)
        versions[f"silver.{table}"] = None if found is None else found.version()
    return {**dataset.data_version, **versions}


def _read(
    settings: Settings, progress: Progress | None
) -> tuple[Dataset, AnnouncedFuture, pd.DataFrame]:
    task = progress.add_task("reading the demand panels from Feast", total=2) if progress else 0
    dataset = load_panel(settings)
    if progress is not None:
        progress.advance(task)
    warehouses = warehouse.load_warehouse_panel(settings)
    if progress is not None:
        progress.advance(task)
    return dataset, AnnouncedFuture(settings, dataset.categories), warehouses


def train_job(settings: Settings, progress: Progress | None = None) -> TrainResult:
    """Backtest every model on the feature store's panel, log the run, register the
    chosen model and let the promotion gate decide on ``champion``."""
    dataset, future, warehouses = _read(settings, progress)
    task = progress.add_task("training and backtesting", total=1) if progress else 0
    version = data_version(settings, dataset) | {"warehouse_feature_service": warehouse.SERVICE}
    result = train(dataset.panel, future, settings, version, warehouses=warehouses)
    if progress is not None:
        progress.advance(task)
    return result


def _recorded_versions(settings: Settings) -> set[str]:
    table = delta.open_table(
        settings.table_uri(ml_tables.LAYER, ml_tables.BACKTESTS), settings.lake_storage_options
    )
    if table is None:
        return set()
    versions = table.to_pyarrow_table(columns=["model_version"]).column("model_version")
    return set(versions.unique().to_pylist())


def score_job(settings: Settings, progress: Progress | None = None) -> Scoring:
    """Forecast the weeks after the last complete one with ``demand_forecast@champion``
    and append the forecasts (and the champion's backtest, once per version) to the lake."""
    dataset, future, warehouses = _read(settings, progress)
    task = progress.add_task("scoring with the champion", total=1) if progress else 0
    origin = dataset.panel["ds"].max()
    scored = score(
        dataset.panel,
        future(origin, dataset.panel),
        settings,
        features_as_of=dataset.features_as_of.to_pydatetime(),
    )
    now = datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    forecast = scored.forecast.assign(scoring_run_id=run_id)
    ml_tables.append(settings, ml_tables.FORECASTS, pa.Table.from_pandas(forecast))
    version = str(forecast["model_version"].iloc[0])
    per_warehouse = _split(settings, forecast, warehouses, origin, version)
    ml_tables.append(settings, ml_tables.WAREHOUSE_FORECASTS, pa.Table.from_pandas(per_warehouse))
    backtest_rows = 0
    if version not in _recorded_versions(settings):
        backtest = scored.backtest.assign(recorded_at=now)
        ml_tables.append(settings, ml_tables.BACKTESTS, pa.Table.from_pandas(backtest))
        backtest_rows = len(backtest)
    measured = _monitor(settings, dataset.panel, version, run_id, now)
    if progress is not None:
        progress.advance(task)
    return Scoring(
        run_id=run_id,
        model_version=version,
        model_name=str(forecast["model_name"].iloc[0]),
        forecasts=len(forecast),
        warehouse_forecasts=len(per_warehouse),
        backtest_rows=backtest_rows,
        features_as_of=dataset.features_as_of.to_pydatetime(),
        worst_drift=measured.worst,
        retrain=bool((measured.psi > settings.drift_retrain_psi).any()),
    )


def _split(
    settings: Settings,
    forecast: pd.DataFrame,
    warehouses: pd.DataFrame,
    origin: pd.Timestamp,
    version: str,
) -> pd.DataFrame:
    """The scoring run's forecasts per product x warehouse: split by the shares known at
    the origin, with the interval calibration the champion's training run fitted on its
    warehouse-level backtest."""
    champion = tracking.client(settings).get_model_version(REGISTERED_MODEL, version)
    fitted = tracking.artifact_json(settings, str(champion.run_id), WAREHOUSE_CALIBRATION)
    if fitted is None:
        raise ForecastError(
            f"{REGISTERED_MODEL} version {version} was trained without the warehouse panel "
            "(no warehouse calibration): train again (`lakehouse ml train`)"
        )
    products = pd.DataFrame(
        {
            ID: forecast["product_id"],
            DS: pd.to_datetime(forecast["week_start_date"]),
            FORECAST: forecast["forecast_units"],
        }
    )
    products[STEP] = ((products[DS] - origin) // WEEK).astype("int64")
    rows = Calibration.from_dict(fitted).apply(
        warehouse.split(products, warehouse.shares(warehouses, origin))
    )
    return pd.DataFrame(
        {
            "scoring_run_id": forecast["scoring_run_id"].iloc[0],
            "product_id": rows[warehouse.PRODUCT].astype("int64"),
            "warehouse_id": rows[warehouse.WAREHOUSE],
            "week_start_date": rows[DS].dt.date,
            "warehouse_share": rows[warehouse.SHARE],
            "forecast_units": rows[FORECAST],
            "lower_80": rows[LOWER],
            "upper_80": rows[UPPER],
            "model_version": version,
            "scored_at": forecast["scored_at"].iloc[0],
        }
    )


def _monitor(
    settings: Settings, panel: pd.DataFrame, version: str, run_id: str, now: datetime
) -> drift.Drift:
    """Drift between the champion's training window and the latest weeks, appended to the
    lake's monitoring table; an alert when a feature's PSI passes ``drift_alert_psi``."""
    champion = tracking.client(settings).get_model_version(REGISTERED_MODEL, version)
    params = tracking.client(settings).get_run(str(champion.run_id)).data.params
    measured = drift.measure(panel, pd.Timestamp(params["last_week"]))
    status = measured.status(settings)
    rows = pd.DataFrame(
        {
            "scoring_run_id": run_id,
            "model_name": REGISTERED_MODEL,
            "model_version": version,
            "feature": measured.psi.index,
            "psi": measured.psi.to_numpy(),
            "status": status.to_numpy(),
            "reference_start": measured.reference[0].date(),
            "reference_end": measured.reference[1].date(),
            "current_start": measured.current[0].date(),
            "current_end": measured.current[1].date(),
            "scored_at": now,
        }
    )
    ml_tables.append(settings, ml_tables.MONITORING, pa.Table.from_pandas(rows))
    drifted = measured.psi[status != "ok"]
    if not drifted.empty:
        send_alert(
            settings,
            {
                "event": "model_drift",
                "summary": f"{REGISTERED_MODEL} version {version}: PSI above "
                f"{settings.drift_alert_psi} for {', '.join(drifted.index)}",
                "model": REGISTERED_MODEL,
                "version": version,
                "psi": {k: round(float(v), 4) for k, v in drifted.items()},
                "retrain": bool((drifted > settings.drift_retrain_psi).any()),
                "scoring_run_id": run_id,
            },
        )
    return measured
