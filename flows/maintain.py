"""Flow: table maintenance. Compact, checkpoint and vacuum the lake's tables as their
metrics say, trim the landed change events past their retention, and record what was done
(``quality.table_maintenance``, shown on the Data health dashboard)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows._runtime import flow_progress, settings_for
from lakehouse.pipeline.maintain import MaintenanceReport, maintain


# Retrying is safe: every step is decided again on the table as the failed attempt left it
@task(name="maintain", retries=1, retry_delay_seconds=30)
def maintain_task(data_dir: str | None) -> MaintenanceReport:
    with flow_progress() as progress:
        return maintain(settings_for(data_dir), progress=progress)


@flow(name="maintain", log_prints=True)
def maintain_flow(data_dir: str | None = None) -> dict[str, int]:
    report = maintain_task(data_dir)
    logger = get_run_logger()
    for record in report.actions:
        logger.info(
            "%s.%s: %s (%s): files %s -> %s, stored MB %.1f -> %.1f",
            record.layer,
            record.table_name,
            record.action,
            record.reason,
            f"{record.files_before:,}",
            f"{record.files_after:,}",
            record.disk_bytes_before / 2**20,
            record.disk_bytes_after / 2**20,
        )
    # what vacuum and the trims deleted (a compaction adds files until the retention passes)
    deleted = sum(
        r.disk_bytes_before - r.disk_bytes_after
        for r in report.records
        if r.action in ("vacuum", "trim")
    )
    logger.info(
        "%d actions in %.1f s; %.1f MB deleted",
        len(report.actions),
        report.seconds,
        deleted / 2**20,
    )
    return {"actions": len(report.actions), "bytes_deleted": deleted}
