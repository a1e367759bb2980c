"""What the gate publishes, through the warehouse port (:func:`lakehouse.warehouse.publish`,
which serves the build area's marts where readers find them, all at once on DuckDB and one
mart at a time on Trino).

When the audit passed, every mart of the build area is served. When the gate blocks a
run, only the quality marts are published; the data marts of the last good run are carried
over unchanged, and ``_publication`` names that run as the one whose data is served.
"""

from __future__ import annotations

from lakehouse.settings import Settings
from lakehouse.warehouse import Publication
from lakehouse.warehouse import publish as serve

QUALITY_MARTS = (
    "mart_data_quality",
    "mart_pipeline_health",
    "mart_table_maintenance",
    "mart_freshness_slo",
)

__all__ = ["QUALITY_MARTS", "Publication", "publish"]


def publish(
    settings: Settings, run_id: str, *, data: bool, served_run_id: str | None
) -> Publication:
    """Serve the build area's quality marts, and its data marts when ``data`` (else keep
    the data marts of ``served_run_id``)."""
    return serve(
        settings,
        run_id,
        refresh=None if data else QUALITY_MARTS,
        required=QUALITY_MARTS,
        data_run_id=run_id if data else served_run_id,
    )
