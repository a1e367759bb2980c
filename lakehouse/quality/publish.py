"""Publish the audited marts where readers find them, all at once.

dbt builds into the build area (DuckDB: the warehouse file, schema ``main_marts``; Trino:
schema ``analytics_marts``), which readers never use. Publishing copies the marts into the
schema ``marts`` that readers query:

* ``local``: a new DuckDB file is written beside the served one and renamed over it
  (``published/lakehouse.duckdb``). A reader holding the old file keeps reading it whole; the
  next connection opens the new one. No writer ever holds the served file open, so readers
  never meet a lock. Every mart changes together.
* ``stack``: each mart is replaced with ``CREATE OR REPLACE TABLE ... AS SELECT``, one
  Delta commit per mart: a reader sees a mart's old version or its new one, never a part.
  The marts change one after another, not together (Trino has no multi-table commit).

When the gate blocks a run, only the quality marts are published; the data marts of the
last good run are carried over unchanged.

``marts._publication`` lists what the served version holds: one row per mart with its row
count, and the run that built it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.contracts.marts import PUBLISHED_SCHEMA, REGION_COLUMN, region_filter
from lakehouse.exceptions import PipelineError
from lakehouse.lake.catalog import trino_connection
from lakehouse.settings import Settings

QUALITY_MARTS = ("mart_data_quality", "mart_pipeline_health")
PUBLICATION = "_publication"
SCHEMA = PUBLISHED_SCHEMA
_DUCKDB_BUILD_SCHEMA = "main_marts"
_TRINO_BUILD_SCHEMA = "analytics_marts"


@dataclass(frozen=True)
class Publication:
    run_id: str
    published_at: datetime
    data_run_id: str | None  # the run whose data marts are served (None: none yet)
    rows: dict[str, int]  # mart -> rows


def publish(
    settings: Settings, run_id: str, *, data: bool, served_run_id: str | None
) -> Publication:
    """Serve the build area's quality marts, and its data marts when ``data`` (else keep
    the data marts of ``served_run_id``)."""
    if settings.dbt_target == "local":
        return _publish_duckdb(settings, run_id, data=data, served_run_id=served_run_id)
    return _publish_trino(settings, run_id, data=data, served_run_id=served_run_id)


def _is_data_mart(name: str) -> bool:
    return name not in QUALITY_MARTS and name != PUBLICATION


def _publish_duckdb(
    settings: Settings, run_id: str, *, data: bool, served_run_id: str | None
) -> Publication:

    target = settings.published_warehouse
    target.parent.mkdir(parents=True, exist_ok=True)
    published_at = datetime.now(UTC)
    with _replaced_whole(target, run_id) as con:
        con.execute(f"ATTACH '{_sql_text(str(settings.warehouse))}' AS build (READ_ONLY)")
        built = _duckdb_tables(con, "build", _DUCKDB_BUILD_SCHEMA)
        sources = {name: f'build."{_DUCKDB_BUILD_SCHEMA}"' for name in built}
        data_run = run_id if data else served_run_id
        if not data:
            sources = {name: src for name, src in sources.items() if not _is_data_mart(name)}
            if target.exists():
                con.execute(f"ATTACH '{_sql_text(str(target))}' AS served (READ_ONLY)")
                for name in _duckdb_tables(con, "served", SCHEMA):
                    if _is_data_mart(name):
                        sources[name] = f'served."{SCHEMA}"'
        missing = [name for name in QUALITY_MARTS if name not in sources]
        if missing:
            raise PipelineError(f"cannot publish: the build area has no {', '.join(missing)}")
        con.execute(f'CREATE SCHEMA "{SCHEMA}"')
        rows: dict[str, int] = {}
        for name, source in sorted(sources.items()):
            con.execute(f'CREATE TABLE "{SCHEMA}"."{name}" AS SELECT * FROM {source}."{name}"')
            count = con.execute(f'SELECT count(*) FROM "{SCHEMA}"."{name}"').fetchone()
            rows[name] = int(count[0]) if count else 0
        con.execute(
            f'CREATE TABLE "{SCHEMA}"."{PUBLICATION}" (run_id VARCHAR, published_at '
            "TIMESTAMP WITH TIME ZONE, data_run_id VARCHAR, mart VARCHAR, row_count BIGINT)"
        )
        con.executemany(
            f'INSERT INTO "{SCHEMA}"."{PUBLICATION}" VALUES (?, ?, ?, ?, ?)',
            [(run_id, published_at, data_run, name, n) for name, n in sorted(rows.items())],
        )
        con.execute("DETACH build")
    _publish_regions(settings, target, run_id)
    return Publication(run_id, published_at, data_run, rows)


def _publish_regions(settings: Settings, served: Path, run_id: str) -> None:
    """One file per region of ``superset_region_roles``: only that region's rows of the
    marts with a region column, and nothing else. A region's readers query it on a
    connection that can read no other file, so what they may see is what it holds: no
    statement form can reach another region's rows. Files of regions no longer listed go."""

    folder = settings.published_regions_dir
    folder.mkdir(parents=True, exist_ok=True)
    regions = list(dict.fromkeys(settings.superset_region_roles))
    for stale in folder.glob("*.duckdb"):
        if stale.stem not in regions:
            stale.unlink()
    for region in regions:
        with _replaced_whole(settings.published_region(region), f"{run_id}_{region}") as con:
            con.execute(f"ATTACH '{_sql_text(str(served))}' AS served (READ_ONLY)")
            tables = con.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_catalog = "
                "'served' AND table_schema = ? AND column_name = ? ORDER BY 1",
                [SCHEMA, REGION_COLUMN],
            ).fetchall()
            con.execute(f'CREATE SCHEMA "{SCHEMA}"')
            for (name,) in tables:
                con.execute(
                    f'CREATE TABLE "{SCHEMA}"."{name}" AS SELECT * FROM served."{SCHEMA}"."{name}" '
                    f"WHERE {region_filter(region)}"
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


def _duckdb_tables(con: Any, catalog: str, schema: str) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_schema = ? AND table_type = 'BASE TABLE' ORDER BY 1",
        [catalog, schema],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _publish_trino(
    settings: Settings, run_id: str, *, data: bool, served_run_id: str | None
) -> Publication:
    catalog = settings.trino_catalog
    published_at = datetime.now(UTC)
    data_run = run_id if data else served_run_id
    with trino_connection(settings) as connection:
        cursor = connection.cursor()
        location = f"{settings.lake_root.rstrip('/')}/{SCHEMA}"
        _trino(
            cursor,
            f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{SCHEMA}" '
            f"WITH (location = '{_sql_text(location)}')",
        )
        built = [
            str(name)
            for (name,) in _trino(
                cursor,
                f'SELECT table_name FROM "{catalog}".information_schema.tables '
                f"WHERE table_schema = '{_TRINO_BUILD_SCHEMA}'",
            )
        ]
        missing = [name for name in QUALITY_MARTS if name not in built]
        if missing:
            raise PipelineError(f"cannot publish: the build area has no {', '.join(missing)}")
        chosen = sorted(name for name in built if data or not _is_data_mart(name))
        rows: dict[str, int] = {}
        for name in chosen:
            _trino(
                cursor,
                f'CREATE OR REPLACE TABLE "{catalog}"."{SCHEMA}"."{name}" AS '
                f'SELECT * FROM "{catalog}"."{_TRINO_BUILD_SCHEMA}"."{name}"',
            )
        served = [
            str(name)
            for (name,) in _trino(
                cursor,
                f'SELECT table_name FROM "{catalog}".information_schema.tables '
                f"WHERE table_schema = '{SCHEMA}' AND table_name <> '{PUBLICATION}'",
            )
        ]
        for name in sorted(served):
            count = _trino(cursor, f'SELECT count(*) FROM "{catalog}"."{SCHEMA}"."{name}"')
            rows[name] = int(count[0][0])
        values = ", ".join(
            # Delta keeps a timestamp with time zone at milliseconds
            f"({_varchar(run_id)}, CAST(from_iso8601_timestamp('{published_at.isoformat()}') "
            f"AS timestamp(3) with time zone), {_varchar(data_run)}, {_varchar(name)}, "
            f"BIGINT '{n}')"
            for name, n in sorted(rows.items())
        )
        _trino(
            cursor,
            f'CREATE OR REPLACE TABLE "{catalog}"."{SCHEMA}"."{PUBLICATION}" AS '
            f"SELECT * FROM (VALUES {values}) "
            "AS t (run_id, published_at, data_run_id, mart, row_count)",
        )
    return Publication(run_id, published_at, data_run, rows)


def _trino(cursor: Any, sql: str) -> list[Any]:
    cursor.execute(sql)
    return list(cursor.fetchall())


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _varchar(text: str | None) -> str:
    """A varchar literal of unbounded length (Delta has no varchar(n)), or a typed NULL."""
    return "CAST(NULL AS varchar)" if text is None else f"CAST('{_sql_text(text)}' AS varchar)"


def _fsync(path: os.PathLike[str] | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
