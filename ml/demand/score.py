"""Batch scoring with the registry's champion: the forecast of the weeks after the
panel, and the champion's backtest, as the frames the forecast marts are built from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from lakehouse.settings import Settings
from ml import tracking
from ml.demand.backtest import FORECAST, ORIGIN
from ml.demand.intervals import LOWER, UPPER
from ml.demand.panel import DS, HORIZON, ID, WEEK, Y, carry_forward, validate_panel
from ml.demand.served import model_input
from ml.demand.train import REGISTERED_MODEL

FORECAST_COLUMNS = (
    "product_id",
    "week_start_date",
    "forecast_units",
    "lower_80",
    "upper_80",
    "model_name",
    "model_version",
    "features_as_of",
    "scored_at",
)
BACKTEST_COLUMNS = (
    "product_id",
    "origin_week",
    "week_start_date",
    "forecast_units",
    "lower_80",
    "upper_80",
    "actual_units",
    "model_version",
)


@dataclass(frozen=True)
class Scored:
    forecast: pd.DataFrame  # FORECAST_COLUMNS: one row per series x week ahead
    backtest: pd.DataFrame  # BACKTEST_COLUMNS: one row per series x origin x target week


def score(
    panel: pd.DataFrame,
    future_exog: pd.DataFrame | None,
    settings: Settings,
    features_as_of: datetime | None = None,
) -> Scored:
    """Forecast the ``HORIZON`` weeks after the panel's last week with
    ``models:/demand_forecast@champion``, resolved on each call (a moved alias is used at
    once, no restart). ``future_exog``: the exogenous values of those weeks as known now
    (None: :func:`~ml.demand.panel.carry_forward`). ``features_as_of`` defaults to the
    end of the panel's last week."""
    panel = validate_panel(panel)
    origin = panel[DS].max()
    if future_exog is None:
        future_exog = carry_forward(origin, panel)
    champion = tracking.load_champion(settings, REGISTERED_MODEL)
    predicted = champion.predict(model_input(panel, future_exog))
    model_name = tracking.client(settings).get_run(champion.run_id).data.params["chosen_model"]
    as_of = pd.Timestamp(features_as_of) if features_as_of else origin + WEEK
    forecast = pd.DataFrame(
        {
            "product_id": predicted[ID].astype("int64"),
            "week_start_date": pd.to_datetime(predicted[DS]).dt.date,
            "forecast_units": predicted[FORECAST],
            "lower_80": predicted[LOWER],
            "upper_80": predicted[UPPER],
            "model_name": model_name,
            "model_version": champion.version,
            "features_as_of": as_of,
            "scored_at": pd.Timestamp(datetime.now(UTC)),
        }
    )
    assert len(forecast) == panel[ID].nunique() * HORIZON
    past = tracking.artifact_table(settings, champion.run_id, "backtest.parquet")
    backtest = pd.DataFrame(
        {
            "product_id": past[ID].astype("int64"),
            "origin_week": pd.to_datetime(past[ORIGIN]).dt.date,
            "week_start_date": pd.to_datetime(past[DS]).dt.date,
            "forecast_units": past[FORECAST],
            "lower_80": past[LOWER],
            "upper_80": past[UPPER],
            "actual_units": past[Y],
            "model_version": champion.version,
        }
    )
    return Scored(forecast[list(FORECAST_COLUMNS)], backtest[list(BACKTEST_COLUMNS)])
