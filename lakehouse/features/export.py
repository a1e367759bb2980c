"""The published feature tables as Parquet files, for Feast's offline store.

Feast's ``duckdb`` offline store reads Parquet, not Delta (DuckDB's ``delta`` extension
cannot be installed here), so each feature table the gate published is written to
``<data_dir>/features/<table>.parquet``, read through the warehouse port: the same code
on both profiles, whichever engine serves the tables. A file is written whole, then
renamed over the old one, so Feast never reads half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq

from lakehouse.exceptions import FeatureStoreError
from lakehouse.progress import Progress
from lakehouse.settings import Settings
from lakehouse.warehouse import connect


def parquet_path(settings: Settings, table: str) -> Path:
    """Where the feature table ``table`` is exported (absolute: DuckDB would resolve a
    relative path against the working directory)."""
    return settings.features_dir / f"{table}.parquet"


def export(settings: Settings, progress: Progress | None = None) -> dict[str, int]:
    """Write every published feature table as Parquet; returns table -> rows."""
    with connect(settings, "published", section="features") as features:
        tables = features.marts()
        if not tables:
            raise FeatureStoreError(
                f"no published feature tables in {features.location}: run `lakehouse build`"
            )
        task = progress.add_task("exporting feature tables", total=len(tables)) if progress else 0
        settings.features_dir.mkdir(parents=True, exist_ok=True)
        rows: dict[str, int] = {}
        for table in tables:
            data = features.read_mart(table)
            target = parquet_path(settings, table)
            partial = target.with_name(f".{target.name}.partial")
            pq.write_table(data, partial)
            os.replace(partial, target)
            rows[table] = data.num_rows
            if progress is not None:
                progress.advance(task)
    return rows
