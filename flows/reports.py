"""Flow: the weekly insight reports (``lakehouse.reports``): the whole business's and each
region's report of the last complete week, built from the published marts after the
week's publication (prefect.yaml schedules it after the weekly model runs)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._runtime import flow_progress, settings_for
from lakehouse.reports import build_reports


@flow(name="reports", log_prints=True)
def reports_flow(
    data_dir: str | None = None, scope: str | None = None, week: str | None = None
) -> list[dict[str, object]]:
    """``scope`` None: every scope; ``week`` None: the last complete week of the data."""
    with flow_progress() as progress:
        built = build_reports(settings_for(data_dir), scope=scope, week=week, progress=progress)
    log = get_run_logger()
    for report in built:
        log.info(
            "%s report of %s in %s (narrative: %s%s)",
            report.scope,
            report.week,
            report.folder,
            report.narrative_source,
            f", {report.narrative_reason}" if report.narrative_reason else "",
        )
    return [
        {
            "scope": r.scope,
            "week": r.week.isoformat(),
            "folder": str(r.folder),
            "narrative": r.narrative_source,
            "reason": r.narrative_reason,
        }
        for r in built
    ]


if __name__ == "__main__":
    reports_flow()
