"""The marts on the ``local`` profile: DuckDB files, each opened read-only.

* build: the file dbt builds (``Settings.warehouse``), schema ``main_marts`` (dbt's
  target schema ``main`` and the models' ``+schema: marts``);
* published: ``published/lakehouse.duckdb``, schema ``marts``, and one file per region
  under ``published/regions/`` with only that region's rows of the marts.

The feature tables (dbt's ``models/features``) are built in ``main_features`` and served
in schema ``features`` of the published file, never in a region's file.

Publishing writes a new file beside the served one and renames it over it. A reader
holding the old file keeps reading it whole; the next connection opens the new one. No
writer ever holds a served file open, so readers never meet a lock, and every mart
changes together.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from lakehouse.contracts.marts import (
    PUBLISHED_FEATURES_SCHEMA,
    PUBLISHED_SCHEMA,
    REGION_COLUMN,
    region_filter,
)
from lakehouse.exceptions import MissingTableError
from lakehouse.settings import Settings
from lakehouse.warehouse.base import (
    BUILD_COMMAND,
    PUBLICATION,
    Area,
    Engine,
    Publication,
    Warehouse,
    quoted,
    require_built,
    sql_text,
)


class DuckDBWarehouse(Warehouse):
    engine: ClassVar[Engine] = "duckdb"
    schemas: ClassVar[dict[Area, str]] = {"build": "main_marts", "published": PUBLISHED_SCHEMA}
    feature_schemas: ClassVar[dict[Area, str]] = {
        "build": "main_features",
        "published": PUBLISHED_FEATURES_SCHEMA,
    }

    _con: Any = None  # opened on the first query

    @property
    def path(self) -> Path:
        if self.area == "build":
            return self.settings.warehouse
        if self.region is not None:
            return self.settings.published_region(self.region)
        return self.settings.published_warehouse

    @property
    def schema(self) -> str:
        return quoted(self.schema_name)

    @property
    def location(self) -> str:
        return f"{self.path}, schema {self.schema_name}"

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        table: pa.Table = self._connection().execute(sql, list(params)).to_arrow_table()
        return table

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connection(self) -> Any:
        if self._con is None:
            import duckdb

            if not self.path.exists():
                raise MissingTableError(
                    f"no {self.area} marts at {self.path}: run `{BUILD_COMMAND}`"
                )
            self._con = duckdb.connect(str(self.path), read_only=True)
        return self._con

    def _available(self) -> bool:
        return self._con is not None or self.path.exists()

    def _information_schema(self) -> str:
        return "information_schema"

    @classmethod
    def expose_lake(cls, settings: Settings) -> None:
        """Nothing to do: dbt-duckdb reads the lake's Delta tables by path."""

    @classmethod
    def publish(
        cls,
        settings: Settings,
        run_id: str,
        *,
        refresh: Collection[str] | None,
        required: Sequence[str],
        data_run_id: str | None,
    ) -> Publication:
        """A new published file, then the regions' files (see
        :func:`lakehouse.warehouse.publish`)."""
        target = settings.published_warehouse
        target.parent.mkdir(parents=True, exist_ok=True)
        published_at = datetime.now(UTC)
        with _replaced_whole(target, run_id) as con:
            con.execute(f"ATTACH '{sql_text(str(settings.warehouse))}' AS build (READ_ONLY)")
            carried = refresh is not None and target.exists()
            if carried:
                con.execute(f"ATTACH '{sql_text(str(target))}' AS served (READ_ONLY)")
            require_built(_tables(con, "build", cls.schemas["build"]), required)
            rows = _serve(con, cls.schemas, refresh, carried)
            features = _serve(con, cls.feature_schemas, refresh, carried)
            served = quoted(cls.schemas["published"])
            con.execute(
                f"CREATE TABLE {served}.{quoted(PUBLICATION)} (run_id VARCHAR, "
                "published_at TIMESTAMP WITH TIME ZONE, data_run_id VARCHAR, mart VARCHAR, "
                "row_count BIGINT)"
            )
            con.executemany(
                f"INSERT INTO {served}.{quoted(PUBLICATION)} VALUES (?, ?, ?, ?, ?)",
                [(run_id, published_at, data_run_id, name, n) for name, n in sorted(rows.items())],
            )
            con.execute("DETACH build")
        _publish_regions(settings, target, run_id)
        return Publication(run_id, published_at, data_run_id, rows, features)


def _serve(
    con: Any, schemas: dict[Area, str], refresh: Collection[str] | None, carried: bool
) -> dict[str, int]:
    """Copy one section's tables into the new file's published schema: the build area's
    (all, or those in ``refresh``), and when ``carried`` the served ones not refreshed.
    Returns each table's row count."""
    build, served = schemas["build"], schemas["published"]
    sources = {
        name: f"build.{quoted(build)}"
        for name in _tables(con, "build", build)
        if refresh is None or name in refresh
    }
    if carried:
        for name in _tables(con, "served", served):
            if name != PUBLICATION:
                sources.setdefault(name, f"served.{quoted(served)}")
    con.execute(f"CREATE SCHEMA {quoted(served)}")
    rows: dict[str, int] = {}
    for name, source in sorted(sources.items()):
        table = f"{quoted(served)}.{quoted(name)}"
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {source}.{quoted(name)}")
        count = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        rows[name] = int(count[0]) if count else 0
    return rows


def _publish_regions(settings: Settings, served: Path, run_id: str) -> None:
    """One file per region of ``superset_region_roles``: only that region's rows of the
    marts with a region column, and nothing else. A region's readers query it on a
    connection that can read no other file, so what they may see is what it holds: no
    statement form can reach another region's rows. Files of regions no longer listed go."""
    schema = quoted(PUBLISHED_SCHEMA)
    folder = settings.published_regions_dir
    folder.mkdir(parents=True, exist_ok=True)
    regions = list(dict.fromkeys(settings.superset_region_roles))
    for stale in folder.glob("*.duckdb"):
        if stale.stem not in regions:
            stale.unlink()
    for region in regions:
        with _replaced_whole(settings.published_region(region), f"{run_id}_{region}") as con:
            con.execute(f"ATTACH '{sql_text(str(served))}' AS served (READ_ONLY)")
            tables = con.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_catalog = "
                "'served' AND table_schema = ? AND column_name = ? ORDER BY 1",
                [PUBLISHED_SCHEMA, REGION_COLUMN],
            ).fetchall()
            con.execute(f"CREATE SCHEMA {schema}")
            for (name,) in tables:
                con.execute(
                    f"CREATE TABLE {schema}.{quoted(name)} AS SELECT * FROM "
                    f"served.{schema}.{quoted(name)} WHERE {region_filter(region)}"
                )
            con.execute("DETACH served")
    _fsync(folder)


@contextmanager
def _replaced_whole(target: Path, tag: str) -> Iterator[Any]:
    """A connection to a new DuckDB file that replaces ``target`` (rename) once the block
    ends without error: readers see the old file or the new one, never a part."""
    import duckdb

    staging = target.with_name(f"publishing_{tag.replace('-', '_')}.duckdb")
    staging.unlink(missing_ok=True)
    con = duckdb.connect(str(staging))
    try:
        yield con
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        staging.unlink(missing_ok=True)
        raise
    con.close()
    _fsync(staging)
    os.replace(staging, target)  # the one step readers can observe
    _fsync(target.parent)


def _tables(con: Any, catalog: str, schema: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_schema = ? AND table_type = 'BASE TABLE' ORDER BY 1",
        [catalog, schema],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _fsync(path: os.PathLike[str] | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
