"""One port to the marts: the build area dbt writes and the published area readers use.

Every reader and writer of the marts goes through it (the gate, ``lakehouse status``, the
benchmarks, and the consumers: features, training, search, reports, the API), so the
choice of engine by profile and the schema of each area live here only::

    from lakehouse.warehouse import connect

    with connect(settings) as marts:  # the published area; "build" for dbt's
        sales = marts.read_mart("mart_sales_lines", ["region", "net_amount"])  # Arrow
        top = marts.query(f"select * from {marts.qualified('dim_product')} limit ?", [10])

``local`` reads DuckDB files read-only (:mod:`.duckdb_files`), ``stack`` Trino's lake
catalog (:mod:`.trino_catalog`). A mart that is not there raises
:class:`~lakehouse.exceptions.MissingTableError` naming the command that builds it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from lakehouse.settings import Settings
from lakehouse.warehouse.base import (
    AREAS,
    PUBLICATION,
    SECTIONS,
    Area,
    Publication,
    Section,
    Warehouse,
)
from lakehouse.warehouse.duckdb_files import DuckDBWarehouse
from lakehouse.warehouse.trino_catalog import TrinoWarehouse

__all__ = [
    "AREAS",
    "PUBLICATION",
    "SECTIONS",
    "Area",
    "Publication",
    "Section",
    "Warehouse",
    "connect",
    "expose_lake",
    "publish",
]


def engine(settings: Settings) -> type[Warehouse]:
    """The engine the marts are on for the settings' profile: the one place that asks."""
    return DuckDBWarehouse if settings.profile == "local" else TrinoWarehouse


def connect(
    settings: Settings,
    area: Area = "published",
    *,
    region: str | None = None,
    section: Section = "marts",
) -> Warehouse:
    """One area of the marts on the profile's engine; ``region``: the published marts as
    that region's readers see them (only its rows); ``section="features"``: the area's
    feature tables instead of its marts. Use it in a ``with`` block."""
    return engine(settings)(settings, area, region, section)


def publish(
    settings: Settings,
    run_id: str,
    *,
    refresh: Collection[str] | None = None,
    required: Sequence[str] = (),
    data_run_id: str | None = None,
) -> Publication:
    """Serve the build area's marts and feature tables: all of them (``refresh`` None),
    or only those in ``refresh``, the other served ones kept as they are. Refuses when a
    ``required`` mart is not built. ``_publication`` then lists every served mart with its
    row count, the run and ``data_run_id`` (the run whose data the served marts hold)."""
    return engine(settings).publish(
        settings, run_id, refresh=refresh, required=required, data_run_id=data_run_id
    )


def expose_lake(settings: Settings) -> None:
    """Make the lake's tables visible to the engine dbt builds with (Trino registers them
    in its catalog; DuckDB reads them by path)."""
    engine(settings).expose_lake(settings)
