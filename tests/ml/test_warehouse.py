"""The per-warehouse forecast: shares learnt from in-stock weeks only (a stock-out is
censored demand), an even split without sales, warehouses summing to the product, and a
split of a good product forecast that beats the warehouse-level baselines, with intervals
calibrated on the warehouse rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.demand.backtest import FORECAST, ORIGIN, STEP
from ml.demand.panel import DS, ID, WEEK
from ml.demand.warehouse import PRODUCT, SHARE, WAREHOUSE, evaluate, shares, split

MONDAYS = pd.date_range("2024-01-01", periods=80, freq="W-MON")
TRUE_SHARES = {"north": 0.6, "south": 0.3, "west": 0.1}
LEVEL = {1: 40.0, 2: 90.0}


def _mean(level: float, week: pd.Timestamp) -> float:
    """The product's expected weekly units: a level with a strong yearly season."""
    return level * (1 + 0.6 * np.sin(2 * np.pi * week.dayofyear / 365.25))


def _panel(seed: int = 5) -> pd.DataFrame:
    """Two products sold from three warehouses at fixed shares of a Poisson demand."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            PRODUCT: pid,
            WAREHOUSE: wid,
            DS: week,
            "units": float(rng.poisson(_mean(level, week) * share)),
            "stockout_days": 0.0,
        }
        for pid, level in LEVEL.items()
        for wid, share in TRUE_SHARES.items()
        for week in MONDAYS
    ]
    return pd.DataFrame(rows)


def _share(found: pd.DataFrame, pid: int, wid: str) -> float:
    row = found[(found[PRODUCT] == pid) & (found[WAREHOUSE] == wid)]
    return float(row[SHARE].iloc[0])


def test_a_stocked_out_week_is_not_low_demand() -> None:
    panel = _panel()
    origin = MONDAYS[-1]
    out_of_stock = (panel[WAREHOUSE] == "north") & (panel[DS] > origin - 8 * WEEK)
    censored = panel.copy()
    censored.loc[out_of_stock, "units"] = 0.0
    censored.loc[out_of_stock, "stockout_days"] = 7.0
    known = shares(censored, origin)
    assert _share(known, 1, "north") == pytest.approx(0.6, abs=0.06)
    # control: the same zeros without the stock-out flag drag the share down
    naive = shares(censored.assign(stockout_days=0.0), origin)
    assert _share(naive, 1, "north") < 0.45
    assert known.groupby(PRODUCT)[SHARE].sum().to_numpy() == pytest.approx([1.0, 1.0])


def test_a_product_without_sales_is_split_evenly_and_the_split_sums_to_it() -> None:
    panel = _panel()
    panel.loc[panel[PRODUCT] == 2, "units"] = 0.0
    origin = MONDAYS[-1]
    known = shares(panel, origin)
    assert [_share(known, 2, w) for w in TRUE_SHARES] == pytest.approx([1 / 3] * 3)
    forecast = pd.DataFrame({ID: [1, 1, 2], DS: MONDAYS[:3], FORECAST: [10.0, 20.0, 9.0]})
    parts = split(forecast, known)
    assert len(parts) == 9
    assert parts.groupby([ID, DS])[FORECAST].sum().to_numpy() == pytest.approx([10, 20, 9])


def test_the_split_of_a_good_forecast_beats_the_warehouse_baselines() -> None:
    panel = _panel()
    origins = MONDAYS[-16:-8:1]
    backtest = pd.DataFrame(
        [
            {
                ID: pid,
                ORIGIN: origin,
                DS: origin + h * WEEK,
                STEP: h,
                FORECAST: _mean(level, origin + h * WEEK),
            }
            for origin in origins
            for pid, level in LEVEL.items()
            for h in range(1, 9)
        ]
    )
    found = evaluate(backtest, panel)
    assert found.rows == len(backtest) * len(TRUE_SHARES)
    assert found.wape < 0.8 * found.best_baseline, found.metrics()
    assert 0.7 <= found.coverage <= 0.9, found.metrics()
    # control: a forecast twice too high is worse than the baselines
    doubled = evaluate(backtest.assign(**{FORECAST: backtest[FORECAST] * 2}), panel)
    assert doubled.wape > doubled.best_baseline
