"""The feature store's objects: entities, the sources (the feature tables dbt builds and
the gate publishes, exported as Parquet), feature views and versioned feature services.

Free of environment but for the data directory (``LAKEHOUSE_DATA_DIR``, absolute), where
the exported tables live. A view's TTL bounds how old a row may be to be used: a week's
row is known on the next Monday, so two weeks cover a late refresh, never a gap.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int32, Int64, String


def _data_dir() -> Path:
    value = os.environ.get("LAKEHOUSE_DATA_DIR")
    if not value or not Path(value).is_absolute():
        raise ValueError(
            "set LAKEHOUSE_DATA_DIR to the data directory's absolute path, e.g. "
            'export LAKEHOUSE_DATA_DIR="$(cd .. && pwd)/.lakehouse" (feature_store.yaml '
            "reads it too)"
        )
    return Path(value)


def _source(table: str) -> FileSource:
    return FileSource(
        name=table,
        path=str(_data_dir() / "features" / f"{table}.parquet"),
        timestamp_field="event_timestamp",
        description=f"dbt model {table}, published by the gate and exported as Parquet",
    )


WEEK_TTL = timedelta(days=14)

product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.INT64)
client = Entity(name="client", join_keys=["client_id"], value_type=ValueType.INT64)
warehouse = Entity(name="warehouse", join_keys=["warehouse_id"], value_type=ValueType.STRING)
category = Entity(name="category", join_keys=["category"], value_type=ValueType.STRING)
week = Entity(
    name="week",
    join_keys=["week_key"],
    value_type=ValueType.INT64,
    description="an ISO week, by its Monday as yyyymmdd",
)

product_demand = FeatureView(
    name="product_demand",
    entities=[product],
    ttl=WEEK_TTL,
    source=_source("feat_product_weekly"),
    # no `category`: it is the promotion calendar's entity key, which entity rows carry
    schema=[
        Field(name="week_of_year", dtype=Int32),
        Field(name="units", dtype=Int64),
        Field(name="units_lag_52", dtype=Int64),
        Field(name="units_mean_4w", dtype=Float64),
        Field(name="units_mean_13w", dtype=Float64),
        Field(name="avg_unit_price", dtype=Float64),
        Field(name="price_change_pct_4w", dtype=Float64),
        Field(name="promo_days", dtype=Int32),
        Field(name="promo_discount_pct", dtype=Float64),
        Field(name="stockout_days", dtype=Int32),
        Field(name="holiday_days", dtype=Int32),
        Field(name="category_units_mean_4w", dtype=Float64),
        Field(name="category_trend", dtype=Float64),
    ],
    description="a product's demand in its latest complete week (feat_product_weekly)",
)

product_warehouse_stock = FeatureView(
    name="product_warehouse_stock",
    entities=[product, warehouse],
    ttl=WEEK_TTL,
    source=_source("feat_product_warehouse_weekly"),
    schema=[
        Field(name="units", dtype=Int64),
        Field(name="stock_on_hand", dtype=Int64),
        Field(name="stockout_days", dtype=Int32),
        Field(name="reorder_point", dtype=Int64),
    ],
    description="a product's demand and stock in one warehouse, latest complete week",
)

promotion_calendar = FeatureView(
    name="promotion_calendar",
    entities=[category, week],
    # a week's promotions are announced days to weeks ahead; a year covers any lookup
    ttl=timedelta(days=365),
    source=_source("feat_promotion_calendar"),
    schema=[
        Field(name="announced_promo_days", dtype=Int32),
        Field(name="announced_discount_pct", dtype=Float64),
    ],
    description="a category-week's promotions as announced by the lookup time",
)

client_activity = FeatureView(
    name="client_activity",
    entities=[client],
    ttl=WEEK_TTL,
    source=_source("feat_client"),
    schema=[
        Field(name="segment", dtype=String),
        Field(name="region", dtype=String),
        Field(name="recency_days", dtype=Int64),
        Field(name="orders_90d", dtype=Int64),
        Field(name="net_revenue_90d", dtype=Float64),
    ],
    description="a client's recent buying, latest complete week",
)

demand_forecast_v1 = FeatureService(
    name="demand_forecast_v1",
    features=[product_demand, promotion_calendar],
    description="the weekly demand forecast: entity rows need product_id, category, "
    "week_key (the target week) and event_timestamp (the forecast origin)",
)

replenishment_v1 = FeatureService(
    name="replenishment_v1",
    features=[product_warehouse_stock],
    description="demand and stock per product x warehouse, for replenishment",
)

client_propositions_v1 = FeatureService(
    name="client_propositions_v1",
    features=[client_activity],
    description="a client's buying, for the top-N propositions",
)
