"""Build the weekly reports: for each scope (the whole business, each region of the data),
the facts from the published marts, the charts, the narrative, then HTML and PDF, written
under ``reports_dir`` as ``<scope>/<week>/``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lakehouse.exceptions import ReportError
from lakehouse.progress import Progress
from lakehouse.reports import charts as charting
from lakehouse.reports import render
from lakehouse.reports.facts import compute_facts, regions, report_week
from lakehouse.reports.narrative import narrative
from lakehouse.reports.store import WHOLE_BUSINESS, valid_scope, write_json, writing
from lakehouse.settings import Settings
from lakehouse.warehouse import connect


@dataclass(frozen=True)
class BuiltReport:
    scope: str
    week: date
    folder: Path
    narrative_source: str
    narrative_reason: str | None
    charts: int
    seconds: float


def build_reports(
    settings: Settings,
    *,
    scope: str | None = None,
    week: date | str | None = None,
    progress: Progress | None = None,
) -> list[BuiltReport]:
    """The reports of ``week`` (None: the last complete week of the published marts) for
    ``scope``: None builds the whole business's and every region's, ``all`` only the whole
    business's, a region only that region's."""
    with connect(settings) as marts:
        chosen = report_week(marts, week)
        known = regions(marts)
        if scope is None:
            scopes = [WHOLE_BUSINESS, *known]
        elif valid_scope(scope) == WHOLE_BUSINESS or scope in known:
            scopes = [scope]
        else:
            raise ReportError(
                f"no region {scope!r} in the published marts (regions: {', '.join(known)})"
            )
        task = progress.add_task(f"reports of {chosen}", total=len(scopes)) if progress else 0
        built = []
        for one in scopes:
            started = datetime.now(UTC)
            facts = compute_facts(marts, one, chosen)
            built.append(_write(settings, facts, chosen, started))
            if progress:
                progress.advance(task)
    return built


def _write(settings: Settings, facts: dict[str, Any], week: date, started: datetime) -> BuiltReport:
    images, notes = charting.charts(facts)
    told = narrative(settings, facts)
    stamp = started.isoformat(timespec="seconds")
    with writing(settings, facts["scope"], week) as folder:
        (folder / "report.html").write_text(render.html(facts, told, images, notes, stamp))
        (folder / "report.pdf").write_bytes(render.pdf(facts, told, images, notes, stamp))
        write_json(folder / "facts.json", facts)
        write_json(folder / "narrative.json", {**told.to_json(), "built_at": stamp})
    final = settings.reports_dir / facts["scope"] / week.isoformat()
    return BuiltReport(
        scope=facts["scope"],
        week=week,
        folder=final,
        narrative_source=told.source,
        narrative_reason=told.reason,
        charts=len(images),
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
