"""The served demand model: a fitted forecaster with its interval calibration, as one
``frame -> frame`` callable that MLflow wraps as a pyfunc.

Its input is one long frame: each series' history (rows with ``y``) followed by the
weeks to forecast (rows with ``y`` null) carrying the exogenous values known at the
origin. The origin is the history's last week. Output: ``unique_id, ds, forecast,
lower_80, upper_80``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml.demand.backtest import FORECAST, STEP
from ml.demand.intervals import LOWER, UPPER, Calibration
from ml.demand.models import Forecaster
from ml.demand.panel import (
    DS,
    ID,
    WEEK,
    Y,
    checked_future,
    exogenous_columns,
    static_columns,
    validate_panel,
)

OUTPUT = (ID, DS, FORECAST, LOWER, UPPER)


@dataclass
class DemandModel:
    forecaster: Forecaster
    model_name: str
    calibration: Calibration
    horizon: int

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        history, future, origin = self._split(frame)
        wide = self.forecaster.predict(history, future)
        out = wide[[ID, DS, self.model_name]].rename(columns={self.model_name: FORECAST})
        out[STEP] = ((out[DS] - origin) // WEEK).astype("int64")
        return self.calibration.apply(out)[list(OUTPUT)]

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The forecast's feature contributions for the same input (``unique_id, ds,
        feature, value, contribution``), or None when the model has none of its own (a
        local statistical model)."""
        contribute = getattr(self.forecaster, "contributions", None)
        if contribute is None:
            return None
        history, future, _ = self._split(frame)
        found: pd.DataFrame = contribute(history, future)
        return found

    def _split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
        is_future = frame[Y].isna()
        history = validate_panel(frame[~is_future])
        origin = history[DS].max()
        return history, checked_future(frame[is_future], history, origin, self.horizon), origin


def model_input(history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
    """The served model's input frame: ``history`` then ``future`` with ``y`` null; the
    future rows carry their series' static columns."""
    static = static_columns(history)
    columns = [ID, DS, Y, *static, *exogenous_columns(history)]
    future = future.drop(columns=static, errors="ignore").merge(
        history[[ID, *static]].drop_duplicates(ID), on=ID, how="left"
    )
    return pd.concat([history, future.assign(**{Y: float("nan")})], ignore_index=True)[columns]
