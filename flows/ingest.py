"""Flow: land new change events in bronze and apply them to silver; then the file and
REST sources beside CDC (``lakehouse.cdc.sources``)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows._runtime import flow_lineage, flow_progress, settings_for
from lakehouse.cdc.lander import IngestReport, ingest
from lakehouse.cdc.sources import SourceReport, run_sources


# Retrying is safe: every Delta commit carries its source offset, so a rerun resumes
# exactly where the failed attempt's last commit ended.
@task(name="land-and-apply", retries=2, retry_delay_seconds=5)
def land_and_apply(
    data_dir: str | None, changes_retention_hours: float | None = None
) -> IngestReport:
    settings = settings_for(data_dir)
    if changes_retention_hours is not None:
        settings = settings.model_copy(update={"changes_retention_hours": changes_retention_hours})
    with flow_progress() as progress:
        return ingest(settings, progress=progress)


# Retrying is safe: dlt keeps a failed load pending and loads it first on the next run,
# and bronze drops the rows it holds already.
@task(name="land-sources", retries=2, retry_delay_seconds=5)
def land_sources(data_dir: str | None) -> list[SourceReport]:
    settings = settings_for(data_dir)
    with flow_progress() as progress:
        return run_sources(settings, progress=progress)


@flow(name="ingest", log_prints=True)
def ingest_flow(
    data_dir: str | None = None, changes_retention_hours: float | None = None
) -> dict[str, int]:
    """``changes_retention_hours``: instead of the setting, for this run."""
    with flow_lineage(data_dir, "ingest"):
        report = land_and_apply(data_dir, changes_retention_hours)
    logger = get_run_logger()
    logger.info(
        "%s events in %.1f s: %s landed, %s duplicates, %s dead letters",
        f"{report.events:,}",
        report.seconds,
        f"{sum(t.landed for t in report.topics):,}",
        f"{sum(t.duplicates for t in report.topics):,}",
        f"{report.rejected:,}",
    )
    sources = land_sources(data_dir)
    for source in sources:
        logger.info(
            "source %s: %s rows read, %s landed, %s dead letters",
            source.name,
            f"{source.rows:,}",
            f"{source.landed:,}",
            f"{source.rejected:,}",
        )
    return {
        "events": report.events,
        "dead_letters": report.rejected + sum(s.rejected for s in sources),
        "source_rows": sum(s.landed for s in sources),
    }
