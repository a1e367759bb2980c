"""Forecasts planted in the lake's ``ml`` tables, as a model job writes them: for tests of
what reads the forecast marts (the gate, the dashboards), whatever model made them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.lake import ml_tables
from lakehouse.settings import Settings

HORIZON = 8


def silver(settings: Settings, table: str) -> pa.Table:
    """A silver table, on the profile's storage (a directory, or the object store)."""
    options = settings.lake_storage_options or None
    return DeltaTable(
        settings.table_uri("silver", table), storage_options=options
    ).to_pyarrow_table()


def active_products(settings: Settings) -> list[int]:
    rows = silver(settings, "product").to_pylist()
    return sorted(r["product_id"] for r in rows if r["is_active"] and not r.get("_deleted"))


def stocked_warehouses(settings: Settings) -> dict[int, list[str]]:
    """Each product's warehouses in the silver stock table, sorted."""
    found: dict[int, set[str]] = {}
    for row in silver(settings, "stock").to_pylist():
        if not row.get("_deleted"):
            found.setdefault(row["product_id"], set()).add(row["warehouse_id"])
    return {pid: sorted(ids) for pid, ids in found.items()}


def _per_warehouse(settings: Settings, forecasts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The forecasts split over each product's warehouses, the k-th of n taking a share
    of k / (1 + ... + n), with wider intervals, as the scoring job writes them."""
    warehouses = stocked_warehouses(settings)
    rows = []
    for f in forecasts:
        ids = warehouses.get(f["product_id"], [])
        total = len(ids) * (len(ids) + 1) / 2
        for k, warehouse_id in enumerate(ids, start=1):
            units = f["forecast_units"] * k / total
            rows.append(
                {
                    "scoring_run_id": f["scoring_run_id"],
                    "product_id": f["product_id"],
                    "warehouse_id": warehouse_id,
                    "week_start_date": f["week_start_date"],
                    "warehouse_share": k / total,
                    "forecast_units": units,
                    "lower_80": units * 0.4,
                    "upper_80": units * 1.7,
                    "model_version": f["model_version"],
                    "scored_at": f["scored_at"],
                }
            )
    return rows


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def plant(
    settings: Settings,
    run_id: str,
    version: str,
    scale: float,
    skip: int | None = None,
    *,
    now: datetime | None = None,
    amend: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> date:
    """Forecasts of every active product (but ``skip``) for the 8 weeks after the lake's
    last complete week, a backtest of 8 origins x 8 target weeks and the drift of two
    features, as a scoring run at ``now`` (default: now) writes them; the first week.
    ``amend(table, rows)`` returns the rows to write to the ``ml`` table instead: a
    test's defects, planted in rows that are otherwise valid."""
    last_order = silver(settings, "orders")
    newest = max(last_order.column("ordered_at").to_pylist()).date()
    first_week = monday(newest)  # the week in progress: forecasts start there
    now = now or datetime.now(UTC)
    forecasts: list[dict[str, Any]] = []
    backtest: list[dict[str, Any]] = []
    for n, pid in enumerate(active_products(settings)):
        if pid == skip:
            continue
        for h in range(HORIZON):
            units = scale * (1 + n % 5) + h
            forecasts.append(
                {
                    "scoring_run_id": run_id,
                    "product_id": pid,
                    "week_start_date": first_week + timedelta(weeks=h),
                    "forecast_units": units,
                    "lower_80": units * 0.5,
                    "upper_80": units * 1.5,
                    "model_name": "planted",
                    "model_version": version,
                    "features_as_of": datetime.combine(first_week, datetime.min.time(), UTC),
                    "scored_at": now,
                }
            )
        for origin in range(HORIZON):
            origin_week = first_week - timedelta(weeks=HORIZON + origin)
            for h in range(1, HORIZON + 1):
                backtest.append(
                    {
                        "model_version": version,
                        "product_id": pid,
                        "origin_week": origin_week,
                        "week_start_date": origin_week + timedelta(weeks=h),
                        "forecast_units": 2.0,
                        "lower_80": 1.0,
                        "upper_80": 3.0,
                        "actual_units": float(h % 3),
                        "recorded_at": now,
                    }
                )
    monitoring = [
        {
            "scoring_run_id": run_id,
            "model_name": "demand_forecast",
            "model_version": version,
            "feature": feature,
            "psi": psi,
            "status": status,
            "reference_start": first_week - timedelta(weeks=60),
            "reference_end": first_week - timedelta(weeks=9),
            "current_start": first_week - timedelta(weeks=8),
            "current_end": first_week - timedelta(weeks=1),
            "scored_at": now,
        }
        for feature, psi, status in (("units", 0.05, "ok"), ("avg_unit_price", 0.25, "alert"))
    ]
    if amend is not None:
        forecasts = amend(ml_tables.FORECASTS, forecasts)
        backtest = amend(ml_tables.BACKTESTS, backtest)
        monitoring = amend(ml_tables.MONITORING, monitoring)
    warehouses = _per_warehouse(settings, forecasts)
    if amend is not None:
        warehouses = amend(ml_tables.WAREHOUSE_FORECASTS, warehouses)
    ml_tables.append(settings, ml_tables.FORECASTS, pa.Table.from_pylist(forecasts))
    ml_tables.append(settings, ml_tables.WAREHOUSE_FORECASTS, pa.Table.from_pylist(warehouses))
    ml_tables.append(settings, ml_tables.BACKTESTS, pa.Table.from_pylist(backtest))
    ml_tables.append(settings, ml_tables.MONITORING, pa.Table.from_pylist(monitoring))
    return first_week
