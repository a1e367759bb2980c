"""The rolling-origin backtest cannot read the panel after an origin: values planted
after it leave that origin's forecasts unchanged, and the future-exogenous callable is
handed only the history. Positive control: a future that reads the panel's realised
values (a leak) does change them."""

from __future__ import annotations

import itertools

import pandas as pd

from ml.demand.backtest import FORECAST, MODEL, backtest, last_origins
from ml.demand.category import CategorySeasonal
from ml.demand.models import GlobalBoosted, StatisticalFamily
from ml.demand.panel import DS, EXOGENOUS, HORIZON, ID, WEEK, Y, future_weeks
from tests.support.demand import AnnouncedFuture


def _forecasters() -> list:
    return [
        StatisticalFamily(candidates=("ADIDA",)),
        GlobalBoosted(n_estimators=20),
        CategorySeasonal(),
    ]


def _planted(panel: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    """Absurd values in every row after ``origin``: units and every exogenous column."""
    out = panel.copy()
    after = out[DS] > origin
    for column in [Y, *(c for c in EXOGENOUS if c in out.columns)]:
        out.loc[after, column] = 1e6
    return out


def _forecasts(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values([MODEL, ID, DS]).reset_index(drop=True)[[MODEL, ID, DS, FORECAST]]


def test_forecasts_of_an_origin_ignore_what_follows_it(shop_truth, shop_panel) -> None:
    future = AnnouncedFuture(shop_truth)
    seen: list[pd.Timestamp] = []

    def watched(origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
        seen.append(history[DS].max() - origin)
        return future(origin, history)

    origins = last_origins(shop_panel, count=8)
    for origin in (origins[0], origins[-1]):
        clean = backtest(shop_panel, watched, _forecasters(), [origin])
        planted = backtest(_planted(shop_panel, origin), watched, _forecasters(), [origin])
        pd.testing.assert_frame_equal(_forecasts(clean), _forecasts(planted))
        assert clean[DS].min() == origin + WEEK and clean[DS].max() == origin + HORIZON * WEEK
    assert seen == [pd.Timedelta(0)] * 4  # the callable saw the history up to the origin only


def test_a_future_that_reads_realised_values_is_caught(shop_truth, shop_panel) -> None:
    """The positive control: the same comparison fails for a leaking future."""
    origin = last_origins(shop_panel, count=8)[0]

    def leaking(panel: pd.DataFrame):
        def future(origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
            keys = future_weeks(history, origin, HORIZON)
            return keys.merge(panel.drop(columns=Y), on=[ID, DS], how="left")

        return future

    planted_panel = _planted(shop_panel, origin)
    clean = backtest(shop_panel, leaking(shop_panel), _forecasters(), [origin])
    planted = backtest(planted_panel, leaking(planted_panel), _forecasters(), [origin])
    lgbm = lambda f: _forecasts(f[f[MODEL] == "lightgbm"])  # noqa: E731
    assert not lgbm(clean)[FORECAST].equals(lgbm(planted)[FORECAST])


def test_the_last_origins_leave_every_target_week_observed(shop_panel) -> None:
    origins = last_origins(shop_panel, count=8)
    last = shop_panel[DS].max()
    assert origins[-1] + HORIZON * WEEK == last
    assert [b - a for a, b in itertools.pairwise(origins)] == [WEEK] * 7
