"""Weekly demand panels built from the generator's ground truth, for the ``ml`` tests.

A test fixture, not the product path (that is dbt's feature tables read through Feast):
computed here with pandas, independently of dbt, from the final source state. Lines of
cancelled orders are gone from ``order_item``; orders are dated by ``ordered_at``.

``holiday_days`` and ``stockout_days`` are left out: the truth keeps no holiday calendar
and no stock history (only the final stock)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.demand.panel import DS, HORIZON, ID, WEEK, Y, future_weeks

DAY = pd.Timedelta(days=1)


def truth_panel(truth: Path) -> pd.DataFrame:
    """The panel of ``truth`` (a ``ground_truth`` directory): complete ISO weeks only,
    each product from its first sold week to the last complete week, zeros filled."""
    lines = pd.read_parquet(truth / "order_item.parquet")
    orders = pd.read_parquet(truth / "orders.parquet", columns=["order_id", "ordered_at", "status"])
    orders = orders[orders["status"] != "cancelled"]
    lines = lines.merge(orders, on="order_id")
    lines[DS] = lines["ordered_at"].dt.to_period("W-SUN").dt.start_time.astype("datetime64[ns]")
    last_complete = (orders["ordered_at"].max() + DAY).to_period("W-SUN").start_time - WEEK
    lines = lines[lines[DS] <= last_complete]
    lines["paid"] = lines["quantity"] * lines["unit_price"].astype(float)
    weekly = lines.groupby(["product_id", DS]).agg(y=("quantity", "sum"), paid=("paid", "sum"))
    first = weekly.reset_index().groupby("product_id")[DS].min()
    grid = pd.concat(
        [
            pd.DataFrame({ID: pid, DS: pd.date_range(start, last_complete, freq="W-MON")})
            for pid, start in first.items()
        ],
        ignore_index=True,
    )
    weekly = weekly.reset_index().rename(columns={"product_id": ID})
    panel = grid.merge(weekly, on=[ID, DS], how="left")
    panel[Y] = panel[Y].fillna(0.0).astype("float64")
    price = (panel["paid"] / panel[Y].where(panel[Y] > 0)).groupby(panel[ID]).ffill()
    panel["avg_unit_price"] = price.groupby(panel[ID]).bfill()
    promos = _promotion_weeks(truth, panel, announced_by=None)
    panel = panel.drop(columns="paid").merge(promos, on=[ID, DS], how="left")
    panel[["promo_discount_pct", "promo_days"]] = panel[
        ["promo_discount_pct", "promo_days"]
    ].fillna(0.0)
    panel["week_of_year"] = panel[DS].dt.isocalendar().week.astype("float64")
    category = pd.read_parquet(truth / "product.parquet", columns=["product_id", "category"])
    panel["category"] = panel[ID].map(category.set_index("product_id")["category"])
    return panel


def warehouse_truth_panel(truth: Path) -> pd.DataFrame:
    """The per-warehouse panel of ``truth`` in :mod:`ml.demand.warehouse`'s shape: units
    per product x warehouse x complete week, a client's orders served by the warehouse of
    its region (the seed ``region_warehouses``; the client's final region), every
    warehouse of a product from its first sold week on; no stock history, so no
    stock-out weeks."""
    from lakehouse.settings import DBT_PROJECT_DIR

    served_by = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "region_warehouses.csv")
    clients = pd.read_parquet(truth / "client.parquet", columns=["client_id", "region"])
    clients = clients.merge(served_by, on="region")
    lines = pd.read_parquet(
        truth / "order_item.parquet", columns=["order_id", "product_id", "quantity"]
    )
    orders = pd.read_parquet(
        truth / "orders.parquet", columns=["order_id", "client_id", "ordered_at", "status"]
    )
    orders = orders[orders["status"] != "cancelled"].merge(clients, on="client_id")
    lines = lines.merge(orders, on="order_id")
    lines[DS] = lines["ordered_at"].dt.to_period("W-SUN").dt.start_time.astype("datetime64[ns]")
    weekly = lines.groupby(["product_id", "warehouse_id", DS])["quantity"].sum()
    products = truth_panel(truth)[[ID, DS]].rename(columns={ID: "product_id"})
    grid = products.merge(served_by[["warehouse_id"]].drop_duplicates(), how="cross")
    panel = grid.merge(weekly.rename("units").reset_index(), how="left")
    panel["units"] = panel["units"].fillna(0.0).astype("float64")
    panel["stockout_days"] = 0.0
    return panel.sort_values(["product_id", "warehouse_id", DS]).reset_index(drop=True)


def _promotion_weeks(
    truth: Path, keys: pd.DataFrame, announced_by: pd.Timestamp | None
) -> pd.DataFrame:
    """Per product and week: the best discount of its category's promotions active that
    week and the days one was active, counting only promotions created (announced) before
    ``announced_by`` when given."""
    promos = pd.read_parquet(truth / "promotion.parquet")
    if announced_by is not None:
        created = promos["updated_at"].dt.tz_localize(None)
        promos = promos[created < announced_by]
    category = pd.read_parquet(truth / "product.parquet", columns=["product_id", "category"])
    days = [
        pd.DataFrame(
            {
                "category": p.category,
                "day": pd.date_range(pd.Timestamp(p.starts_on), pd.Timestamp(p.ends_on)),
                "pct": float(p.discount_pct),
            }
        )
        for p in promos.itertuples()
    ]
    if not days:
        return pd.DataFrame(columns=[ID, DS, "promo_discount_pct", "promo_days"])
    daily = pd.concat(days).groupby(["category", "day"])["pct"].max().reset_index()
    daily[DS] = daily["day"].dt.to_period("W-SUN").dt.start_time.astype("datetime64[ns]")
    per_week = daily.groupby(["category", DS]).agg(
        promo_discount_pct=("pct", "max"), promo_days=("day", "nunique")
    )
    ids = keys[[ID]].drop_duplicates().merge(category.rename(columns={"product_id": ID}), on=ID)
    out = ids.merge(per_week.reset_index(), on="category").drop(columns="category")
    return out.astype({"promo_days": "float64"})


class AnnouncedFuture:
    """The :data:`~ml.demand.panel.FutureExog` of the truth: the calendar, the last known
    price, and the promotions announced (created) by the end of the origin's week."""

    def __init__(self, truth: Path) -> None:
        self.truth = truth

    def __call__(self, origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
        keys = future_weeks(history, origin, HORIZON)
        last_price = history.groupby(ID)["avg_unit_price"].last()
        keys["avg_unit_price"] = keys[ID].map(last_price)
        promos = _promotion_weeks(self.truth, keys, announced_by=origin + WEEK)
        keys = keys.merge(promos, on=[ID, DS], how="left")
        keys[["promo_discount_pct", "promo_days"]] = keys[
            ["promo_discount_pct", "promo_days"]
        ].fillna(0.0)
        keys["week_of_year"] = keys[DS].dt.isocalendar().week.astype("float64")
        return keys


def oracle_forecasts(truth: Path, rows: pd.DataFrame) -> pd.Series:
    """The generator's expected units for each of ``rows`` (``unique_id, ds``), aligned
    with them: the floor a forecast of those rows can reach. 0 where the product could
    not be ordered that week. Test and bench support: the product code never sees it."""
    expected = pd.read_parquet(truth / "expected_demand.parquet").rename(
        columns={"product_id": ID, "week_start_date": DS}
    )
    expected[DS] = pd.to_datetime(expected[DS]).astype("datetime64[ns]")
    keys = rows[[ID, DS]].astype({ID: "int64"})
    found = keys.merge(expected, on=[ID, DS], how="left")["expected_units"]
    return pd.Series(found.fillna(0.0).to_numpy(), index=rows.index, name="oracle")
