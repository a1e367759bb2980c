"""Rolling-origin backtest and its metrics.

An origin is the last week whose actuals a forecast may use (Nixtla's "cutoff"); its
forecasts are for the ``HORIZON`` weeks after it. The backtest hands each forecaster only
the panel's rows up to the origin, and the caller's :data:`FutureExog` only those rows
too: nothing after an origin can reach its forecasts. Actuals join afterwards, to score.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lakehouse.exceptions import ForecastError
from ml.demand.models import Forecaster
from ml.demand.panel import DS, HORIZON, ID, WEEK, FutureExog, Y, checked_future

ORIGIN, STEP, MODEL, FORECAST = "origin", "h", "model", "forecast"


def last_origins(panel: pd.DataFrame, count: int = 8, horizon: int = HORIZON) -> list[pd.Timestamp]:
    """The last ``count`` origins whose every target week is observed in the panel,
    oldest first."""
    last = panel[DS].max()
    origins = [last - (horizon + k) * WEEK for k in range(count - 1, -1, -1)]
    if origins[0] <= panel[DS].min():
        weeks = panel[DS].nunique()
        raise ForecastError(
            f"the panel's {weeks} weeks are too few for {count} origins of {horizon} weeks"
        )
    return origins


def backtest(
    panel: pd.DataFrame,
    future_exog: FutureExog,
    forecasters: Sequence[Forecaster],
    origins: Sequence[pd.Timestamp],
) -> pd.DataFrame:
    """Long frame ``unique_id, origin, ds, h, model, forecast``: every forecaster refitted
    at every origin on the history up to it."""
    frames = []
    for origin in origins:
        history = panel[panel[DS] <= origin].reset_index(drop=True)
        future = checked_future(future_exog(origin, history.copy()), history, origin, HORIZON)
        for forecaster in forecasters:
            wide = forecaster.fit(history).predict(history, future)
            long = wide.melt(id_vars=[ID, DS], var_name=MODEL, value_name=FORECAST)
            frames.append(long.assign(**{ORIGIN: origin}))
    out = pd.concat(frames, ignore_index=True)
    out[STEP] = ((out[DS] - out[ORIGIN]) // WEEK).astype("int64")
    return out[[ID, ORIGIN, DS, STEP, MODEL, FORECAST]]


def with_actuals(forecasts: pd.DataFrame, panel: pd.DataFrame) -> pd.DataFrame:
    """The forecasts whose target week is in the panel, with its ``y``."""
    return forecasts.merge(panel[[ID, DS, Y]], on=[ID, DS], how="inner")


def wape(scored: pd.DataFrame) -> float:
    """Weighted absolute percentage error: sum |y - forecast| / sum y."""
    return float((scored[Y] - scored[FORECAST]).abs().sum() / scored[Y].sum())


def wape_by(scored: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """:func:`wape` per group of ``by``."""
    keys = [scored[c] for c in by]
    error = (scored[Y] - scored[FORECAST]).abs()
    return error.groupby(keys).sum() / scored[Y].groupby(keys).sum()
