"""Where the reports live: ``<reports_dir>/<scope>/<week>/`` holds ``report.html``,
``report.pdf``, ``facts.json`` and ``narrative.json``, written to a temporary folder and
renamed into place, so a reader never sees half a report. The listing the API serves is
read from these folders; every name in a path is checked first (a scope is ``all`` or a
region name, a week a Monday), so no input can reach outside the reports' directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lakehouse.exceptions import ReportError
from lakehouse.settings import REGION_NAME_PATTERN, Settings

WHOLE_BUSINESS = "all"  # the scope of the whole business; any other scope is a region
SCOPE_PATTERN = rf"^(?:{WHOLE_BUSINESS}|{REGION_NAME_PATTERN.strip('^$')})$"
WEEK_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
FILES = ("report.html", "report.pdf", "facts.json", "narrative.json")
_SCOPE = re.compile(SCOPE_PATTERN)
_WEEK = re.compile(WEEK_PATTERN)


@dataclass(frozen=True)
class ReportEntry:
    """A built report: its scope and week, when it was built, and whose narrative it has."""

    scope: str
    week: date
    built_at: datetime
    narrative_source: str  # "llm" or "template"
    narrative_reason: str | None
    folder: Path

    @property
    def region(self) -> str | None:
        return None if self.scope == WHOLE_BUSINESS else self.scope

    def file(self, name: str) -> Path:
        if name not in FILES:
            raise ReportError(f"a report has no file {name!r} (one of {', '.join(FILES)})")
        return self.folder / name


def valid_scope(scope: str) -> str:
    """``scope`` when it is ``all`` or a region name, else :class:`ReportError`."""
    if not _SCOPE.fullmatch(scope):
        raise ReportError(f"not a report scope: {scope!r} (`{WHOLE_BUSINESS}` or a region name)")
    return scope


def valid_week(week: str | date) -> date:
    """The Monday ``week`` names (``YYYY-MM-DD``), else :class:`ReportError`."""
    if isinstance(week, str):
        if not _WEEK.fullmatch(week):
            raise ReportError(f"not a week: {week!r} (its Monday as YYYY-MM-DD)")
        try:
            week = date.fromisoformat(week)
        except ValueError as exc:
            raise ReportError(f"not a date: {week!r}") from exc
    if week.isoweekday() != 1:
        raise ReportError(f"{week.isoformat()} is not a Monday: a report week starts on Monday")
    return week


def report_folder(settings: Settings, scope: str, week: str | date) -> Path:
    """The folder of one report (checked names only: see :func:`valid_scope`)."""
    return settings.reports_dir / valid_scope(scope) / valid_week(week).isoformat()


def find(settings: Settings, scope: str, week: str | date) -> ReportEntry | None:
    """The report of ``scope`` and ``week``, or None when it was not built."""
    return _entry(report_folder(settings, scope, week))


def list_reports(settings: Settings) -> list[ReportEntry]:
    """Every built report, the newest week first, then the whole business, then regions."""
    root = settings.reports_dir
    found: list[ReportEntry] = []
    if not root.is_dir():
        return found
    for scope_dir in root.iterdir():
        if not scope_dir.is_dir() or not _SCOPE.fullmatch(scope_dir.name):
            continue
        for week_dir in scope_dir.iterdir():
            if week_dir.is_dir() and _WEEK.fullmatch(week_dir.name):
                entry = _entry(week_dir)
                if entry is not None:
                    found.append(entry)
    found.sort(key=lambda e: (-e.week.toordinal(), e.scope != WHOLE_BUSINESS, e.scope))
    return found


def _entry(folder: Path) -> ReportEntry | None:
    if not all((folder / name).is_file() for name in FILES):
        return None
    try:
        narrative = json.loads((folder / "narrative.json").read_text())
        week = valid_week(folder.name)
    except (ValueError, ReportError):
        return None
    built = datetime.fromtimestamp((folder / "report.pdf").stat().st_mtime, UTC)
    return ReportEntry(
        scope=folder.parent.name,
        week=week,
        built_at=built,
        narrative_source=str(narrative.get("source", "template")),
        narrative_reason=narrative.get("reason"),
        folder=folder,
    )


@contextmanager
def writing(settings: Settings, scope: str, week: date) -> Iterator[Path]:
    """A temporary folder to write one report into, renamed to its place when the block
    ends without an error (the previous build of the same report goes then)."""
    target = report_folder(settings, scope, week)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{week.isoformat()}-", dir=target.parent))
    try:
        yield staging
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
