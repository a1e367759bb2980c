"""The hierarchical candidate ``category_seasonal``: exact on a panel whose structure is
its own (product level x category season), lifted only by what the future frame
announces, blind to the panel after the origin; and the panel's static ``category``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.exceptions import ForecastError
from ml.demand.backtest import FORECAST, MODEL, backtest, last_origins
from ml.demand.category import CategorySeasonal
from ml.demand.panel import DS, HORIZON, ID, WEEK, Y, future_weeks, validate_panel
from tests.support.demand import AnnouncedFuture

WEEKS = 120


def _structured() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units exactly level x the category's yearly season, two categories of three
    products, constant prices, no promotion: the panel up to week WEEKS and the true
    units of the HORIZON weeks after it."""
    weeks = pd.date_range("2023-01-02", periods=WEEKS + HORIZON, freq="W-MON")
    phase = np.arange(len(weeks)) % 52
    season = {"toys": 1 + 0.8 * np.cos(2 * np.pi * phase / 52), "home": 1 + 0.3 * (phase > 30)}
    frames = []
    for uid, (category, level) in enumerate(
        [
            ("toys", 5.0),
            ("toys", 12.0),
            ("toys", 30.0),
            ("home", 2.0),
            ("home", 8.0),
            ("home", 40.0),
        ]
    ):
        frames.append(
            pd.DataFrame(
                {
                    ID: uid + 1,
                    DS: weeks,
                    Y: level * season[category],
                    "category": category,
                    "avg_unit_price": 10.0,
                    "promo_discount_pct": 0.0,
                    "promo_days": 0.0,
                }
            )
        )
    whole = pd.concat(frames, ignore_index=True)
    cut = weeks[WEEKS - 1]
    return whole[whole[DS] <= cut].reset_index(drop=True), whole[whole[DS] > cut]


def test_exact_on_a_panel_of_its_own_structure() -> None:
    panel, truth = _structured()
    origin = panel[DS].max()
    future = future_weeks(panel, origin, HORIZON).merge(
        truth.drop(columns=Y), on=[ID, DS], how="left"
    )
    out = CategorySeasonal(smooth=0).predict(panel, future)
    got = out.merge(truth[[ID, DS, Y]], on=[ID, DS])
    np.testing.assert_allclose(got["category_seasonal"], got[Y], rtol=1e-9)


def test_an_announced_promotion_lifts_its_week_and_nothing_else() -> None:
    panel, truth = _structured()
    rng = np.random.default_rng(0)
    promo_weeks = rng.choice(np.arange(60, WEEKS), 8, replace=False)
    weeks = panel[DS].drop_duplicates().sort_values().to_numpy()
    lifted = panel[DS].isin(weeks[promo_weeks]) & (panel["category"] == "toys")
    panel.loc[lifted, ["promo_discount_pct", "promo_days"]] = [20.0, 7.0]
    panel.loc[lifted, Y] *= 1.9  # 20% off the whole week: 1.9 times the units
    origin = panel[DS].max()
    future = future_weeks(panel, origin, HORIZON).merge(
        truth.drop(columns=Y), on=[ID, DS], how="left"
    )
    plain = CategorySeasonal(smooth=0).predict(panel, future)
    first = (future[DS] == origin + WEEK) & future[ID].isin([1, 2, 3])
    future.loc[first, ["promo_discount_pct", "promo_days"]] = [20.0, 7.0]
    announced = CategorySeasonal(smooth=0).predict(panel, future)
    ratio = announced["category_seasonal"] / plain["category_seasonal"]
    np.testing.assert_allclose(ratio[first.to_numpy()], 1.9, rtol=0.03)  # beta is fitted
    np.testing.assert_allclose(ratio[~first.to_numpy()], 1.0)


def test_what_follows_an_origin_changes_nothing(shop_truth, shop_panel) -> None:
    """Units, prices and promotions planted after the origin (in the panel) leave the
    origin's forecasts as they were; the same plant before the origin moves them (the
    positive control)."""
    origin = last_origins(shop_panel, count=8)[0]
    columns = [Y, "avg_unit_price", "promo_discount_pct", "promo_days"]

    def planted(when: pd.Series) -> pd.DataFrame:
        out = shop_panel.copy()
        out.loc[when, columns] = [500.0, 0.01, 30.0, 7.0]
        return out

    def forecast(panel: pd.DataFrame) -> pd.Series:
        out = backtest(panel, AnnouncedFuture(shop_truth), [CategorySeasonal()], [origin])
        return out.sort_values([MODEL, ID, DS])[FORECAST].reset_index(drop=True)

    clean = forecast(shop_panel)
    pd.testing.assert_series_equal(clean, forecast(planted(shop_panel[DS] > origin)))
    before = shop_panel[DS].between(origin - 10 * WEEK, origin)
    assert not clean.equals(forecast(planted(before)))


def test_the_category_is_one_value_per_series(shop_panel) -> None:
    assert validate_panel(shop_panel)["category"].dtype == object
    broken = shop_panel.copy()
    first = broken[ID] == broken[ID].iloc[0]
    broken.loc[first.idxmax(), "category"] = "somewhere else"
    with pytest.raises(ForecastError, match="category must be one value per unique_id"):
        validate_panel(broken)
