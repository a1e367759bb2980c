"""The propositions' inputs straight from a generated shop's ground truth, without the
pipeline: the purchases (lines of orders not cancelled), the products, and the clients'
segment and region. For the unit tests and ``bench/propositions.py``; the pipeline reads
the same from the published marts and Feast (``ml.propositions.data``).

The ground truth holds the final rows only, so a product's history is approximated: it
could be proposed from its creation on, and until now if it is active now, else until
its last sale (the day it was discontinued is not in the final row). Clients keep their
final segment and region.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.propositions.data import Purchases


def truth_purchases(truth: Path) -> Purchases:
    orders = pd.read_parquet(truth / "orders.parquet")
    orders = orders[orders["status"] != "cancelled"]
    items = pd.read_parquet(truth / "order_item.parquet")
    lines = items.merge(orders[["order_id", "client_id", "ordered_at"]], on="order_id")
    lines = pd.DataFrame(
        {
            "client_id": lines["client_id"].astype("int64"),
            "product_id": lines["product_id"].astype("int64"),
            "order_date": pd.to_datetime(lines["ordered_at"]).dt.tz_localize(None).dt.normalize(),
            "quantity": lines["quantity"].astype(float),
        }
    )
    product = pd.read_parquet(truth / "product.parquet")
    last_sale = lines.groupby("product_id")["order_date"].max()
    created = pd.to_datetime(product["created_at"])
    if created.dt.tz is not None:
        created = created.dt.tz_localize(None)
    valid_to = np.where(
        product["is_active"],
        pd.NaT,
        last_sale.reindex(product["product_id"]).to_numpy() + np.timedelta64(1, "D"),
    )
    products = pd.DataFrame(
        {
            "product_id": product["product_id"].astype("int64"),
            "category": product["category"],
            "is_active": True,
            "is_current": True,
            "is_deleted": False,
            "valid_from": created.to_numpy(),
            "valid_to": pd.to_datetime(valid_to),
            "in_stock": True,
        }
    )
    clients = pd.read_parquet(truth / "client.parquet")
    return Purchases(lines, products, sorted(clients["client_id"].astype(int).tolist()))


def truth_clients(truth: Path) -> pd.DataFrame:
    clients = pd.read_parquet(truth / "client.parquet")
    return (
        clients[["client_id", "segment", "region"]]
        .astype({"client_id": "int64"})
        .sort_values("client_id")
        .reset_index(drop=True)
    )


def clients_at(truth: Path):  # type: ignore[no-untyped-def]
    """``clients_at(day)`` for ``train``: the final segment and region, whatever the day."""
    frame = truth_clients(truth)

    def at(_: date | None) -> pd.DataFrame:
        return frame

    return at
