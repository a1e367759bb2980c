"""What the propositions learn from, read from the published marts and the feature store.

* purchases: ``fct_order_item`` (lines of orders not cancelled: client, product, order
  date, quantity);
* products: every ``dim_product`` version with its validity, so the products that could
  be proposed at a cutoff are those active then (a product discontinued later is not
  left out of a backtest by hindsight), with today's stock on hand for scoring;
* clients: segment and region from Feast's ``client_propositions_v1``, as of the cutoff
  for a backtest (point in time) and from the online store for scoring.

The backtest's cutoff follows the demo generator's oracle window: the eight complete ISO
weeks (Monday to Sunday) that end the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

from lakehouse.exceptions import PropositionsError
from lakehouse.settings import Settings

HORIZON_DAYS = 56  # the weeks after a cutoff whose purchases count as hits
SERVICE = "client_propositions_v1"

_LINES_SQL = """
select client_id, product_id, order_date, quantity
from {lines}
where client_id >= 0 and product_id >= 0
"""

_PRODUCTS_SQL = """
select
    product_id,
    category,
    is_active,
    is_current,
    is_deleted,
    cast(valid_from as timestamp) as valid_from,
    cast(valid_to as timestamp) as valid_to
from {products}
where product_id >= 0
"""

_CLIENTS_SQL = """
select client_id
from {clients}
where is_current and not is_deleted and client_id >= 0
"""


@dataclass(frozen=True)
class Purchases:
    lines: pd.DataFrame  # client_id, product_id, order_date (datetime64), quantity
    products: pd.DataFrame  # every dim_product version: see _PRODUCTS_SQL
    clients: list[int]  # the current clients

    @property
    def last_date(self) -> date:
        return pd.Timestamp(self.lines["order_date"].max()).date()

    def before(self, day: date) -> pd.DataFrame:
        return self.lines[self.lines["order_date"] < pd.Timestamp(day)]

    def between(self, start: date, end: date) -> pd.DataFrame:
        days = self.lines["order_date"]
        return self.lines[(days >= pd.Timestamp(start)) & (days < pd.Timestamp(end))]

    def active_at(self, day: date | None) -> pd.DataFrame:
        """One row per product (``product_id``, ``category``, ``in_stock``) that could be
        proposed: active at the start of ``day``, or now (and in stock) for None."""
        p = self.products
        if day is None:
            now = p[p["is_current"] & ~p["is_deleted"] & p["is_active"] & p["in_stock"]]
        else:
            at = pd.Timestamp(datetime.combine(day, time()))
            valid = (p["valid_from"] <= at) & (p["valid_to"].isna() | (p["valid_to"] > at))
            now = p[valid & p["is_active"] & ~p["is_deleted"]]
        return now.drop_duplicates("product_id")[["product_id", "category", "in_stock"]]


def load(settings: Settings) -> Purchases:
    """The purchases, products and clients of the published marts; a product's stock on
    hand is the search catalogue's (the last day of data, any warehouse)."""
    from lakehouse.search.catalog import published_products
    from lakehouse.warehouse import connect

    with connect(settings) as marts:
        for mart in ("fct_order_item", "dim_product", "dim_client"):
            marts.columns(mart)  # a missing mart: the port's error, naming `lakehouse build`
        lines = marts.query(_LINES_SQL.format(lines=marts.qualified("fct_order_item")))
        products = marts.query(_PRODUCTS_SQL.format(products=marts.qualified("dim_product")))
        clients = marts.query(_CLIENTS_SQL.format(clients=marts.qualified("dim_client")))
    frame = lines.to_pandas()
    if frame.empty:
        raise PropositionsError("no purchases in the published marts: run `lakehouse build`")
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    frame["quantity"] = frame["quantity"].astype(float)
    stock = published_products(settings).select(["product_id", "in_stock"]).to_pandas()
    products_frame = products.to_pandas().merge(stock, on="product_id", how="left")
    products_frame["in_stock"] = products_frame["in_stock"].fillna(False).astype(bool)
    for column in ("valid_from", "valid_to"):
        products_frame[column] = pd.to_datetime(products_frame[column]).dt.tz_localize(None)
    return Purchases(frame, products_frame, sorted(clients.column("client_id").to_pylist()))


def backtest_window(last_day: date) -> tuple[date, date]:
    """The cutoff and the end (exclusive) of the backtest's hits: the ``HORIZON_DAYS`` up
    to the end of the last complete ISO week on or before ``last_day``."""
    if last_day.weekday() == 6:
        end = last_day + timedelta(days=1)
    else:
        end = last_day - timedelta(days=last_day.weekday())
    return end - timedelta(days=HORIZON_DAYS), end


def client_features(settings: Settings, clients: list[int], as_of: date | None) -> pd.DataFrame:
    """``client_id``, ``segment``, ``region`` (and the service's other features) from
    Feast: as known at the start of ``as_of`` (offline, point in time), or the online
    store's latest for None. A client the store does not know gets ``unknown``."""
    from lakehouse.features import historical_features, online_features

    if as_of is not None:
        entities = pd.DataFrame(
            {
                "client_id": clients,
                "event_timestamp": pd.Timestamp(datetime.combine(as_of, time()), tz="UTC"),
            }
        )
        frame = historical_features(settings, entities, SERVICE)
    else:
        found = online_features(settings, [{"client_id": c} for c in clients], SERVICE)
        frame = pd.DataFrame(found)
    frame = frame.drop(columns=["event_timestamp"], errors="ignore")
    for column in ("segment", "region"):
        frame[column] = frame[column].fillna("unknown").astype(str)
    return frame.sort_values("client_id").reset_index(drop=True)
