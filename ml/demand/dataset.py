"""The demand panel and its known future, read from the feature store, point in time.

* :func:`load_panel`: one entity row per product x complete week (the keys of the
  published ``feat_product_weekly``), with ``event_timestamp`` = the end of that week;
  Feast's ``get_historical_features`` on the feature service ``demand_forecast_v1``
  returns each row's features as known then. Nothing is joined on current values.
* :class:`AnnouncedFuture`: the :data:`~ml.demand.panel.FutureExog` of the feature
  store. For an origin, the promotions of each target week are those of Feast's
  ``promotion_calendar`` view as known at the end of the origin's week (announced by
  then); the calendar (week of year, the shop's holidays, a calendar known in advance)
  and the last known price complete it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from lakehouse.exceptions import ForecastError
from lakehouse.features import historical_features
from lakehouse.settings import DBT_PROJECT_DIR, Settings
from lakehouse.warehouse import connect
from ml.demand.panel import DS, HORIZON, ID, WEEK, Y, carry_forward, future_weeks

SERVICE = "demand_forecast_v1"
FEATURES = "feat_product_weekly"
HOLIDAYS = DBT_PROJECT_DIR / "seeds" / "shop_holidays.csv"
# the product_demand view's names -> the panel's
PANEL_COLUMNS = {
    "units": Y,
    "avg_unit_price": "avg_unit_price",
    "promo_discount_pct": "promo_discount_pct",
    "promo_days": "promo_days",
    "stockout_days": "stockout_days",
    "holiday_days": "holiday_days",
    "week_of_year": "week_of_year",
}


@dataclass(frozen=True)
class Dataset:
    panel: pd.DataFrame
    categories: pd.Series  # product_id -> category
    features_as_of: pd.Timestamp  # end of the last complete week read
    data_version: dict[str, Any] = field(default_factory=dict)


def week_key(weeks: pd.Series) -> pd.Series:
    """The promotion calendar's week key: a Monday as the integer yyyymmdd."""
    return weeks.dt.strftime("%Y%m%d").astype("int64")


def _entity_rows(settings: Settings) -> pd.DataFrame:
    with connect(settings, "published", section="features") as features:
        keys = features.read_mart(
            FEATURES, ["product_id", "category", "week_start_date", "event_timestamp"]
        ).to_pandas()
    if keys.empty:
        raise ForecastError(
            f"the published {FEATURES} is empty: build the marts first (`lakehouse build`)"
        )
    keys["week_start_date"] = pd.to_datetime(keys["week_start_date"])
    keys["event_timestamp"] = pd.to_datetime(keys["event_timestamp"], utc=True)
    keys["week_key"] = week_key(keys["week_start_date"])
    return keys


def load_panel(settings: Settings) -> Dataset:
    """The weekly panel of every product, its features as Feast knew them each week."""
    keys = _entity_rows(settings)
    rows = historical_features(
        settings, keys[["product_id", "category", "week_key", "event_timestamp"]], SERVICE
    )
    rows = rows.merge(
        keys[["product_id", "week_key", "week_start_date"]], on=["product_id", "week_key"]
    )
    missing = rows["units"].isna().sum()
    if missing:
        raise ForecastError(
            f"{missing} product-weeks have no features in Feast's offline store: export "
            "them again (`lakehouse features export`)"
        )
    panel = rows.rename(columns={"product_id": ID, "week_start_date": DS, **PANEL_COLUMNS})
    panel = panel[[ID, DS, *PANEL_COLUMNS.values()]].astype(
        {c: "float64" for c in PANEL_COLUMNS.values()}
    )
    categories = keys.drop_duplicates("product_id").set_index("product_id")["category"]
    panel["category"] = panel[ID].map(categories)
    panel = panel.sort_values([ID, DS]).reset_index(drop=True)
    return Dataset(
        panel=panel,
        categories=categories,
        features_as_of=keys["event_timestamp"].max(),
        data_version={"feature_service": SERVICE, "feature_table": FEATURES},
    )


def shop_holidays() -> set[date]:
    with HOLIDAYS.open() as f:
        return {date.fromisoformat(row["holiday_date"]) for row in csv.DictReader(f)}


class AnnouncedFuture:
    """What is known at an origin about the weeks after it: Feast's promotion calendar as
    of the end of the origin's week, the shop's holidays, the last known price."""

    def __init__(self, settings: Settings, categories: pd.Series) -> None:
        self.settings = settings
        self.categories = categories
        self.holidays = shop_holidays()

    def __call__(self, origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
        known = carry_forward(origin, history)  # calendar, last price, no promotion
        keys = future_weeks(history, origin, HORIZON)
        keys["category"] = keys[ID].map(self.categories)
        keys["week_key"] = week_key(keys[DS])
        keys["event_timestamp"] = (origin + WEEK).tz_localize("UTC")  # the origin week's end
        announced = historical_features(
            self.settings,
            keys.rename(columns={ID: "product_id"})[
                ["product_id", "category", "week_key", "event_timestamp"]
            ],
            SERVICE,
        )[["product_id", "week_key", "announced_promo_days", "announced_discount_pct"]]
        keys = keys.merge(
            announced.rename(columns={"product_id": ID}), on=[ID, "week_key"], how="left"
        )
        known = known.merge(
            keys[[ID, DS, "announced_promo_days", "announced_discount_pct"]],
            on=[ID, DS],
            how="left",
        )
        if "promo_days" in known:
            known["promo_days"] = known["announced_promo_days"].fillna(0.0).astype("float64")
        if "promo_discount_pct" in known:
            known["promo_discount_pct"] = (
                known["announced_discount_pct"].fillna(0.0).astype("float64")
            )
        if "holiday_days" in known:
            known["holiday_days"] = known[DS].map(self._holiday_days).astype("float64")
        return known.drop(columns=["announced_promo_days", "announced_discount_pct"])

    def _holiday_days(self, monday: pd.Timestamp) -> int:
        first = monday.date()
        return sum(date.fromordinal(first.toordinal() + d) in self.holidays for d in range(7))
