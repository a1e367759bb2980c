"""A small lake for the gate's tests, faults to inject into it, and what readers of the
published marts see."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.publish import QUALITY_MARTS
from lakehouse.settings import Settings, load_settings

SMALL = GenerateParams(clients=40, products=15, days=30, snapshot_day=5)


def small_lake(data_dir: Path, **overrides: Any) -> Settings:
    """A generated change log landed into bronze and silver (no build yet). The sources
    are years old, so the freshness SLAs are off unless a test sets them."""
    settings = lake_settings(data_dir, **overrides)
    generate(settings, SMALL)
    ingest(settings)
    return settings


def lake_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "freshness_warn_after_minutes": None,
        "freshness_error_after_minutes": None,
    }
    return load_settings(**{**values, **overrides})


def copy_lake(settings: Settings, data_dir: Path, **overrides: Any) -> Settings:
    """The whole data directory (lake, build warehouse, published marts) copied."""
    shutil.copytree(settings.root, data_dir)
    return lake_settings(data_dir, **overrides)


# --- faults: each changes silver, and the source (the recording's ground truth) with it
# unless the fault is a difference between the two


def _silver(settings: Settings, table: str) -> DeltaTable:
    return DeltaTable(
        settings.table_uri("silver", table), storage_options=settings.lake_storage_options or None
    )


def _truth_path(settings: Settings, table: str) -> Path:
    return settings.ground_truth_path / f"{table}.parquet"


def _rewrite(settings: Settings, table: str, change: Any, *, source_too: bool = True) -> None:
    """Apply ``change(arrow table) -> arrow table`` to silver (overwrite) and the truth."""
    silver = _silver(settings, table).to_pyarrow_table()
    write_deltalake(
        settings.table_uri("silver", table),
        change(silver),
        mode="overwrite",
        storage_options=settings.lake_storage_options or None,
    )
    if source_too:
        path = _truth_path(settings, table)
        pq.write_table(change(pq.read_table(path)), path)


def _set_first(column: str, value: Any) -> Any:
    def change(rows: pa.Table) -> pa.Table:
        i = rows.column_names.index(column)
        values = rows.column(i).to_pylist()
        values[0] = value
        field = rows.field(i).with_nullable(value is None or rows.field(i).nullable)
        return rows.set_column(i, field, pa.array(values, field.type))

    return change


def negative_quantity(settings: Settings) -> None:
    _rewrite(settings, "order_item", _set_first("quantity", -3))


def orphan_foreign_key(settings: Settings) -> None:
    _rewrite(settings, "orders", _set_first("client_id", 987_654_321))


def duplicate_primary_key(settings: Settings) -> None:
    def change(rows: pa.Table) -> pa.Table:
        return pa.concat_tables([rows, rows.slice(0, 1)])

    _rewrite(settings, "orders", change)


def null_in_not_null_column(settings: Settings) -> None:
    _rewrite(settings, "orders", _set_first("ordered_at", None))


def row_missing_from_silver(settings: Settings) -> None:
    first = _silver(settings, "transporter").to_pyarrow_table(columns=["transporter_id"])
    key = first.column(0)[0].as_py()
    _silver(settings, "transporter").delete(f"transporter_id = {key}")


FAULTS = {
    "negative quantity": negative_quantity,
    "orphan foreign key": orphan_foreign_key,
    "duplicate primary key": duplicate_primary_key,
    "null in a not-null column": null_in_not_null_column,
    "row-count mismatch with the source": row_missing_from_silver,
}


# --- the published marts, as a reader sees them


def published(settings: Settings) -> dict[str, Any]:
    """What the published file serves: its publication and each mart's row count, counted
    (not read from the publication table)."""
    with duckdb.connect(str(settings.published_warehouse), read_only=True) as con:
        rows = con.execute(
            "select run_id, data_run_id, mart, row_count from marts._publication"
        ).fetchall()
        counted = {
            mart: int(con.execute(f'select count(*) from marts."{mart}"').fetchone()[0])  # type: ignore[index]
            for (_, _, mart, _) in rows
        }
    return {
        "run_id": rows[0][0],
        "data_run_id": rows[0][1],
        "listed": {mart: n for (_, _, mart, n) in rows},
        "counted": counted,
    }


# marts that a model job fills (lakehouse/lake/ml_tables.py): empty until a model scored
MODEL_MARTS = (
    "mart_demand_forecast",
    "mart_forecast_backtest",
    "mart_replenishment",
    "mart_model_monitoring",
    "mart_client_recommendations",
    "mart_recommendation_backtest",
    "mart_recommendation_metrics",
    "mart_report_forecast_check",
)


# marts of the source data that hold only exceptions (stock at risk): empty on a shop
# whose stock is healthy, as a small one's often is
EXCEPTION_MARTS = ("mart_report_stock_risk",)


def data_marts(view: dict[str, Any]) -> dict[str, int]:
    """The published marts of the source data, with their row counts (not the quality
    marts, the marts of model outputs, nor those of exceptions)."""
    return {
        mart: n
        for mart, n in view["counted"].items()
        if mart not in (*QUALITY_MARTS, *MODEL_MARTS, *EXCEPTION_MARTS)
    }


def negative_quantities(settings: Settings) -> int:
    with duckdb.connect(str(settings.published_warehouse), read_only=True) as con:
        row = con.execute("select count(*) from marts.fct_order_item where quantity < 0")
        return int(row.fetchone()[0])  # type: ignore[index]
