"""The baselines and the metric on a hand-made panel, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.demand.backtest import FORECAST, wape
from ml.demand.models import MEAN_LAST_4, SEASONAL_NAIVE, StatisticalFamily
from ml.demand.panel import DS, HORIZON, ID, Y, future_weeks, validate_panel


def _panel() -> pd.DataFrame:
    """Series 1: 60 weeks of y = 100 + week number; series 2: 10 weeks, too young for a
    seasonal naive."""
    weeks = pd.date_range("2024-01-01", periods=60, freq="W-MON")
    old = pd.DataFrame({ID: 1, DS: weeks, Y: 100.0 + np.arange(60)})
    young = pd.DataFrame({ID: 2, DS: weeks[-10:], Y: [3.0, 0, 5, 1, 0, 2, 8, 4, 0, 6]})
    return validate_panel(pd.concat([old, young]))


def test_seasonal_naive_and_mean_of_last_4() -> None:
    panel = _panel()
    origin = panel[DS].max()
    out = StatisticalFamily(candidates=()).predict(panel, future_weeks(panel, origin, HORIZON))
    old, young = out[out[ID] == 1], out[out[ID] == 2]
    # week 60 + k is week 60 + k - 52 a year before: y = 100 + (59 + k - 52)
    assert old[SEASONAL_NAIVE].tolist() == [100.0 + 7 + k for k in range(1, 9)]
    assert old[MEAN_LAST_4].tolist() == [(156 + 157 + 158 + 159) / 4] * 8
    assert young[MEAN_LAST_4].tolist() == [(8 + 4 + 0 + 6) / 4] * 8
    # no year of history: the seasonal naive falls back to the mean of the last 4 weeks
    assert young[SEASONAL_NAIVE].tolist() == [4.5] * 8
    assert list(out[DS].unique()) == list(pd.date_range(origin, periods=9, freq="W-MON")[1:])


def test_wape_is_absolute_error_over_actual_units() -> None:
    frame = pd.DataFrame({Y: [10.0, 0.0, 30.0], FORECAST: [12.0, 3.0, 25.0]})
    assert wape(frame) == pytest.approx((2 + 3 + 5) / 40)
