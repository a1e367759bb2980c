"""The input contract of the demand jobs: a weekly panel, and the future it may know.

The panel is a pandas DataFrame, one row per series and week:

============  ===================================================================
``unique_id``  the series key: a product_id (int); a product x warehouse key works
               the same way, nothing reads meaning into it
``ds``         the week's start, a Monday (datetime64); weeks are ISO weeks
``y``          units on order lines of orders not cancelled, ordered that week
               (float); a week without sales is a row with 0, not a missing row
============  ===================================================================

plus any of the exogenous columns of Feast's ``feat_product_weekly`` view (read with
``get_historical_features``, so each row holds what was known that week):
``avg_unit_price``, ``promo_discount_pct``, ``promo_days``, ``stockout_days``,
``holiday_days``, ``week_of_year``; and the static column ``category`` (the product's
category, a string, one value per series), which lets a model pool what a category
shares (its season, its promotions) and measure each product against it.

Every week of the panel is complete (a partial current week is left out), and each
series has one row per week from its first week to the panel's last week.

The future exogenous values of the weeks to forecast come from the caller, as a frame
keyed by (``unique_id``, ``ds``), and must be what was KNOWN AT THE ORIGIN (calendar,
promotions announced by then, the last known price), never what happened later. The
backtest asks for them through a :data:`FutureExog` callable that is given only the
history up to each origin, so a backtest cannot read the future by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from lakehouse.exceptions import ForecastError

ID, DS, Y = "unique_id", "ds", "y"
EXOGENOUS = (
    "avg_unit_price",
    "promo_discount_pct",
    "promo_days",
    "stockout_days",
    "holiday_days",
    "week_of_year",
)
STATIC = ("category",)  # one value per series, known for every week
HORIZON = 8
WEEK = pd.Timedelta(weeks=1)
FREQ = "W-MON"

# (origin, history up to and including the origin's week) -> exogenous values of the
# HORIZON weeks after the origin, keyed by (unique_id, ds), as known at the origin
FutureExog = Callable[[pd.Timestamp, pd.DataFrame], pd.DataFrame]


def exogenous_columns(panel: pd.DataFrame) -> list[str]:
    """The contract's exogenous columns this panel carries, in the contract's order."""
    return [c for c in EXOGENOUS if c in panel.columns]


def static_columns(panel: pd.DataFrame) -> list[str]:
    """The contract's static columns this panel carries."""
    return [c for c in STATIC if c in panel.columns]


def validate_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel with the contract's types, sorted by series and week; a one-line
    :class:`ForecastError` on what breaks the contract."""
    missing = [c for c in (ID, DS, Y) if c not in panel.columns]
    if missing:
        raise ForecastError(f"the demand panel lacks column(s) {', '.join(missing)}")
    unknown = sorted(set(panel.columns) - {ID, DS, Y, *EXOGENOUS, *STATIC})
    if unknown:
        raise ForecastError(
            f"the demand panel has column(s) outside the contract: {', '.join(unknown)} "
            f"(exogenous columns are {', '.join(EXOGENOUS)}; static: {', '.join(STATIC)})"
        )
    if panel.empty:
        raise ForecastError("the demand panel is empty: no weeks to learn from")
    out = panel.astype({ID: "int64", Y: "float64"})
    out[DS] = pd.to_datetime(out[DS]).astype("datetime64[ns]")
    exog = exogenous_columns(out)
    out[exog] = out[exog].astype("float64")
    if (out[DS].dt.dayofweek != 0).any():
        raise ForecastError("the demand panel's ds must be week starts (Mondays)")
    if out[Y].isna().any() or (out[Y] < 0).any():
        raise ForecastError("the demand panel's y must be non-negative units, never null")
    for column in static_columns(out):
        if out[column].isna().any() or (out.groupby(ID)[column].nunique() > 1).any():
            raise ForecastError(f"the demand panel's {column} must be one value per unique_id")
        out[column] = out[column].astype(str)
    if out.duplicated([ID, DS]).any():
        raise ForecastError("the demand panel has more than one row per unique_id and week")
    out = out.sort_values([ID, DS], ignore_index=True)
    last = out[DS].max()
    span = out.groupby(ID)[DS].agg(["min", "count"])
    gaps = span["count"] != (last - span["min"]) // WEEK + 1
    if gaps.any():
        raise ForecastError(
            f"{int(gaps.sum())} series of the demand panel miss weeks (e.g. unique_id "
            f"{span.index[gaps][0]}): a series needs a row per week from its first week "
            "to the panel's last, with y 0 when nothing sold"
        )
    return out


def future_weeks(history: pd.DataFrame, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """The (unique_id, ds) keys of the ``horizon`` weeks after ``origin`` for every
    series of ``history``."""
    ids = history[ID].unique()
    weeks = pd.date_range(origin + WEEK, periods=horizon, freq=FREQ)
    return pd.MultiIndex.from_product([ids, weeks], names=[ID, DS]).to_frame(index=False)


def carry_forward(origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
    """A :data:`FutureExog` that knows only the history: the calendar (week of year;
    holidays as in the same week a year before), each series' last known price, no
    announced promotion and no stock-out. The caller with an announced-promotion table
    does better."""
    keys = future_weeks(history, origin, HORIZON)
    exog = exogenous_columns(history)
    if "week_of_year" in exog:
        keys["week_of_year"] = keys[DS].dt.isocalendar().week.astype("float64")
    if "avg_unit_price" in exog:
        last = history.dropna(subset=["avg_unit_price"]).groupby(ID)["avg_unit_price"].last()
        keys["avg_unit_price"] = keys[ID].map(last)
    for column in ("promo_discount_pct", "promo_days", "stockout_days"):
        if column in exog:
            keys[column] = 0.0
    if "holiday_days" in exog:
        year_before = history[[ID, DS, "holiday_days"]].assign(**{DS: history[DS] + 52 * WEEK})
        keys = keys.merge(year_before, on=[ID, DS], how="left")
        keys["holiday_days"] = keys["holiday_days"].fillna(0.0)
    return keys


def checked_future(
    future: pd.DataFrame, history: pd.DataFrame, origin: pd.Timestamp, horizon: int
) -> pd.DataFrame:
    """``future`` restricted to the keys to forecast, with every exogenous column of the
    history present and no key missing (a model cannot forecast a week it has no
    inputs for)."""
    exog = exogenous_columns(history)
    absent = [c for c in exog if c not in future.columns]
    if absent:
        raise ForecastError(
            f"the future exogenous frame lacks {', '.join(absent)} (the panel has them)"
        )
    keys = future_weeks(history, origin, horizon)
    given = future[[ID, DS, *exog]].astype({ID: "int64"})
    given[DS] = pd.to_datetime(given[DS]).astype("datetime64[ns]")
    out = keys.merge(given, on=[ID, DS], how="left", indicator=True)
    lost = out["_merge"] != "both"
    if lost.any():
        row = out[lost].iloc[0]
        raise ForecastError(
            f"the future exogenous frame has no row for unique_id {row[ID]} week "
            f"{row[DS]:%Y-%m-%d} ({int(lost.sum())} missing of {len(out)})"
        )
    out = out.drop(columns="_merge")
    out[exog] = out[exog].astype("float64")
    return out
