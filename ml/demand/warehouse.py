"""Forecasts per product x warehouse, for replenishment: the product's forecast split
over its warehouses by their recent share of its demand (top-down, the way a retail
planning team disaggregates), with intervals calibrated on the warehouse-level backtest.

Why top-down: a warehouse's weekly units for one product are a handful, too noisy for a
model of their own to beat the product's forecast times a stable share, and the split
keeps the warehouses' forecasts summing to the product's. Whether it holds is measured,
not assumed: :func:`evaluate` splits the product backtest at each origin with the shares
known then and scores it against the warehouse actuals and against two warehouse-level
baselines (the mean of the last 4 weeks, and the same week last year).

A share is the warehouse's part of the product's units over the last
:data:`SHARE_WEEKS` weeks, counting only the weeks in which none of the product's
warehouses was out of stock (a week with a stock-out is censored demand, not low
demand); a product without sales in the window is split evenly. Intervals: the split
conformal of :mod:`ml.demand.intervals`, fitted on the warehouse rows (a share of the
product's interval would be too narrow: a warehouse's noise is larger relative to its
level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lakehouse.exceptions import ForecastError
from lakehouse.features import historical_features
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from ml.demand.backtest import FORECAST, ORIGIN, STEP, wape
from ml.demand.intervals import Calibration, covered, cross_conformal
from ml.demand.panel import DS, ID, WEEK, Y

SERVICE = "replenishment_v1"
FEATURES = "feat_product_warehouse_weekly"
PRODUCT, WAREHOUSE, SHARE = "product_id", "warehouse_id", "warehouse_share"
SHARE_WEEKS = 13
MIN_CLEAN_WEEKS = 4
SEASON = 52 * WEEK


def load_warehouse_panel(settings: Settings) -> pd.DataFrame:
    """``product_id, warehouse_id, ds, units, stockout_days``: one row per product x
    warehouse x complete week, as Feast's ``replenishment_v1`` knew it that week."""
    with connect(settings, "published", section="features") as features:
        keys = features.read_mart(
            FEATURES, [PRODUCT, WAREHOUSE, "week_start_date", "event_timestamp"]
        ).to_pandas()
    if keys.empty:
        raise ForecastError(
            f"the published {FEATURES} is empty: build the marts first (`lakehouse build`)"
        )
    keys["event_timestamp"] = pd.to_datetime(keys["event_timestamp"], utc=True)
    rows = historical_features(settings, keys, SERVICE)  # week_start_date passes through
    if rows["units"].isna().any():
        raise ForecastError(
            f"{int(rows['units'].isna().sum())} product-warehouse-weeks have no features in "
            "Feast's offline store: export them again (`lakehouse features export`)"
        )
    panel = pd.DataFrame(
        {
            PRODUCT: rows[PRODUCT].astype("int64"),
            WAREHOUSE: rows[WAREHOUSE].astype(str),
            DS: pd.to_datetime(rows["week_start_date"]),
            "units": rows["units"].astype("float64"),
            "stockout_days": rows["stockout_days"].fillna(0).astype("float64"),
        }
    )
    return panel.sort_values([PRODUCT, WAREHOUSE, DS]).reset_index(drop=True)


def shares(panel: pd.DataFrame, origin: pd.Timestamp, weeks: int = SHARE_WEEKS) -> pd.DataFrame:
    """``product_id, warehouse_id, warehouse_share`` as known at ``origin`` (its week
    included), from the window's weeks in which every warehouse of the product had
    stock; with fewer than :data:`MIN_CLEAN_WEEKS` of those, each warehouse's mean over
    its own in-stock weeks (the season then biases the shares a little)."""
    window = panel[(panel[DS] <= origin) & (panel[DS] > origin - weeks * WEEK)]
    out_of_stock = window["stockout_days"] > 0
    dirty = window[out_of_stock].groupby([PRODUCT, DS]).size().rename("dirty")
    window = window.join(dirty, on=[PRODUCT, DS])
    clean = window[window["dirty"].isna()]
    clean_weeks = clean.groupby(PRODUCT)[DS].nunique()
    by_clean = clean[clean[PRODUCT].map(clean_weeks) >= MIN_CLEAN_WEEKS]
    rate = by_clean.groupby([PRODUCT, WAREHOUSE])["units"].mean()
    rest = window[~window[PRODUCT].isin(by_clean[PRODUCT]) & ~out_of_stock]
    rate = pd.concat([rate, rest.groupby([PRODUCT, WAREHOUSE])["units"].mean()])
    pairs = window[[PRODUCT, WAREHOUSE]].drop_duplicates().set_index([PRODUCT, WAREHOUSE])
    out = pairs.join(rate.rename("rate"), how="left").fillna({"rate": 0.0}).reset_index()
    total = out.groupby(PRODUCT)["rate"].transform("sum")
    count = out.groupby(PRODUCT)["rate"].transform("size")
    out[SHARE] = np.where(total > 0, out["rate"] / total.where(total > 0, 1.0), 1.0 / count)
    return out[[PRODUCT, WAREHOUSE, SHARE]]


def split(forecast: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """``forecast`` (one row per product = ``unique_id`` x week, with ``forecast``) as one
    row per product x warehouse x week, the point forecast times the warehouse's share."""
    out = forecast.merge(known, left_on=ID, right_on=PRODUCT, how="inner")
    out[FORECAST] = out[FORECAST] * out[SHARE]
    return out


def _baselines(panel: pd.DataFrame, rows: pd.DataFrame) -> dict[str, float]:
    """The warehouse-level baselines' WAPE on the same rows (origin x target week x pair):
    the mean of the pair's last 4 weeks at the origin, and its units a year before."""
    keys = [PRODUCT, WAREHOUSE]
    recent = []
    for origin in rows[ORIGIN].unique():
        last4 = panel[(panel[DS] <= origin) & (panel[DS] > origin - 4 * WEEK)]
        mean = last4.groupby(keys)["units"].mean().rename("mean_4w").reset_index()
        recent.append(mean.assign(**{ORIGIN: origin}))
    scored = rows.merge(pd.concat(recent), on=[*keys, ORIGIN], how="left")
    last_year = panel[[*keys, DS, "units"]].rename(columns={"units": "seasonal_naive"})
    last_year[DS] = last_year[DS] + SEASON
    scored = scored.merge(last_year, on=[*keys, DS], how="left")
    out = {}
    for name in ("mean_4w", "seasonal_naive"):
        fallback = scored["mean_4w"] if name == "seasonal_naive" else 0.0
        out[name] = wape(scored.assign(**{FORECAST: scored[name].fillna(fallback).fillna(0.0)}))
    return out


@dataclass(frozen=True)
class WarehouseEvaluation:
    """The split product backtest against the warehouse actuals."""

    wape: float
    baselines: dict[str, float]  # baseline -> WAPE at warehouse level
    coverage: float  # out of sample (cross-conformal)
    calibration: Calibration  # fitted on every origin: what scoring applies
    rows: int

    @property
    def best_baseline(self) -> float:
        return min(self.baselines.values())

    def metrics(self) -> dict[str, float]:
        return {
            "warehouse.wape": self.wape,
            "warehouse.best_baseline_wape": self.best_baseline,
            "warehouse.coverage_80": self.coverage,
            **{f"warehouse.wape.{k}": v for k, v in self.baselines.items()},
        }


def evaluate(backtest: pd.DataFrame, panel: pd.DataFrame) -> WarehouseEvaluation:
    """Split the chosen model's product backtest (``unique_id, origin, ds, h,
    forecast``) at each origin with the shares known then, and score it."""
    parts = []
    for origin, rows in backtest[[ID, ORIGIN, DS, STEP, FORECAST]].groupby(ORIGIN):
        parts.append(split(rows, shares(panel, pd.Timestamp(origin))))
    split_rows = pd.concat(parts, ignore_index=True)
    actual = panel[[PRODUCT, WAREHOUSE, DS, "units"]].rename(columns={"units": Y})
    scored = split_rows.merge(actual, on=[PRODUCT, WAREHOUSE, DS], how="inner")
    if scored.empty or scored[Y].sum() <= 0:
        raise ForecastError("no warehouse actuals in the backtest's target weeks")
    return WarehouseEvaluation(
        wape=wape(scored),
        baselines=_baselines(panel, scored),
        coverage=float(covered(cross_conformal(scored)).mean()),
        calibration=Calibration.fit(scored),
        rows=len(scored),
    )
