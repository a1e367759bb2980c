"""The marts on the ``stack`` profile: Delta tables of Trino's lake catalog.

* build: schema ``analytics_marts`` (dbt's target schema ``analytics`` and the models'
  ``+schema: marts``);
* published: schema ``marts``. A region's readers connect as the region's user, whose
  rows Trino's access rules filter.

The feature tables are built in ``analytics_features`` and served in schema ``features``,
which only the pipeline's user reads (Trino's access rules grant the others ``marts``).

The connection is the pipeline's (``lakehouse.lake.catalog.trino_connection``: password
authentication over HTTPS when the settings ask for it). Publishing replaces each mart with
``CREATE OR REPLACE TABLE ... AS SELECT``, one Delta commit per mart: a reader sees a
mart's old version or its new one, never a part. The marts change one after another, not
together (Trino has no multi-table commit).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa

from lakehouse.contracts.marts import PUBLISHED_FEATURES_SCHEMA, PUBLISHED_SCHEMA
from lakehouse.exceptions import ServiceError
from lakehouse.lake.catalog import register_tables, trino_connection
from lakehouse.settings import Settings
from lakehouse.warehouse.arrow import trino_arrow
from lakehouse.warehouse.base import (
    PUBLICATION,
    Area,
    Engine,
    Publication,
    Section,
    Warehouse,
    quoted,
    require_built,
    sql_text,
)


class TrinoWarehouse(Warehouse):
    engine: ClassVar[Engine] = "trino"
    schemas: ClassVar[dict[Area, str]] = {
        "build": "analytics_marts",
        "published": PUBLISHED_SCHEMA,
    }
    feature_schemas: ClassVar[dict[Area, str]] = {
        "build": "analytics_features",
        "published": PUBLISHED_FEATURES_SCHEMA,
    }

    _connection: Any = None  # opened on the first query

    @property
    def schema(self) -> str:
        return f"{quoted(self.settings.trino_catalog)}.{quoted(self.schema_name)}"

    @property
    def location(self) -> str:
        return f"Trino {self.settings.trino_catalog}.{self.schema_name}"

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        import trino

        if self._connection is None:
            user = self.settings.region_user(self.region) if self.region else None
            self._connection = trino_connection(self.settings, user=user)
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, list(params) or None)
            rows = cursor.fetchall()
        except (trino.exceptions.TrinoConnectionError, OSError) as exc:
            s = self.settings
            raise ServiceError(
                f"cannot reach Trino at {s.trino_host}:{s.trino_port} for the {self.area} "
                f"marts ({type(exc).__name__}); is the stack up (`lakehouse stack up`)?"
            ) from None
        return trino_arrow(cursor.description, rows)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _information_schema(self) -> str:
        return f"{quoted(self.settings.trino_catalog)}.information_schema"

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
        """Each mart replaced in turn, then ``_publication`` (see
        :func:`lakehouse.warehouse.publish`)."""
        published_at = datetime.now(UTC)
        rows = _serve(settings, "marts", refresh, required)
        features = _serve(settings, "features", refresh, ())
        with cls(settings, "published") as served:
            values = ", ".join(
                # Delta keeps a timestamp with time zone at milliseconds
                f"({_varchar(run_id)}, CAST(from_iso8601_timestamp('{published_at.isoformat()}') "
                f"AS timestamp(3) with time zone), {_varchar(data_run_id)}, {_varchar(name)}, "
                f"BIGINT '{n}')"
                for name, n in sorted(rows.items())
            )
            served.query(
                f"CREATE OR REPLACE TABLE {served.qualified(PUBLICATION)} AS "
                f"SELECT * FROM (VALUES {values}) "
                "AS t (run_id, published_at, data_run_id, mart, row_count)"
            )
        return Publication(run_id, published_at, data_run_id, rows, features)

    @classmethod
    def expose_lake(cls, settings: Settings) -> None:
        """Trino knows a Delta table only once it is registered in its catalog."""
        register_tables(settings)


def _serve(
    settings: Settings,
    section: Section,
    refresh: Collection[str] | None,
    required: Sequence[str],
) -> dict[str, int]:
    """Replace each built table of ``section`` in the published schema (all, or those in
    ``refresh``); returns the row count of every table the published schema serves."""
    with (
        TrinoWarehouse(settings, "build", section=section) as build,
        TrinoWarehouse(settings, "published", section=section) as served,
    ):
        location = f"{settings.lake_root.rstrip('/')}/{served.schema_name}"
        served.query(
            f"CREATE SCHEMA IF NOT EXISTS {served.schema} WITH (location = '{sql_text(location)}')"
        )
        built = build.marts()
        require_built(built, required)
        for name in built:
            if refresh is None or name in refresh:
                served.query(
                    f"CREATE OR REPLACE TABLE {served.qualified(name)} AS "
                    f"SELECT * FROM {build.qualified(name)}"
                )
        rows: dict[str, int] = {}
        for name in served.marts():
            if name != PUBLICATION:
                count = served.query(f"SELECT count(*) FROM {served.qualified(name)}")
                rows[name] = int(count.column(0)[0].as_py())
        return rows


def _varchar(text: str | None) -> str:
    """A varchar literal of unbounded length (Delta has no varchar(n)), or a typed NULL."""
    return "CAST(NULL AS varchar)" if text is None else f"CAST('{sql_text(text)}' AS varchar)"
