"""``/reports``: the weekly insight reports (:mod:`lakehouse.reports`), listed newest
first and served as HTML and PDF.

A region's key sees only its region's reports; the whole business's key sees every one.
Another scope's report answers 404, as a report that does not exist, so a key learns
nothing of what it may not read. The scope and week in a path are checked against strict
patterns before any file is looked at: nothing reaches outside the reports' directory.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from lakehouse.api import pages
from lakehouse.api.auth import Principal
from lakehouse.api.deps import Caller, State
from lakehouse.api.problems import Problem
from lakehouse.api.state import ServingState
from lakehouse.exceptions import ReportError
from lakehouse.reports import WHOLE_BUSINESS, ReportEntry, find, list_reports
from lakehouse.reports.store import SCOPE_PATTERN, WEEK_PATTERN

router = APIRouter(tags=["reports"])

ScopeParam = Annotated[
    str,
    Path(
        pattern=SCOPE_PATTERN,
        max_length=63,
        description=f"`{WHOLE_BUSINESS}` (the whole business) or a region",
    ),
]
LATEST = "latest"  # a week in a path: the scope's newest report (for links that last)
WeekParam = Annotated[
    str,
    Path(
        pattern=rf"{WEEK_PATTERN}|^{LATEST}$",
        max_length=10,
        description=f"the week's Monday, YYYY-MM-DD, or `{LATEST}`",
    ),
]
MEDIA = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


class ReportLinks(BaseModel):
    self: str
    html: str
    pdf: str


class ReportSummary(BaseModel):
    scope: str = Field(description=f"`{WHOLE_BUSINESS}` (the whole business) or a region")
    week: date = Field(description="the report week's Monday")
    built_at: datetime
    narrative_source: Literal["llm", "template"]
    links: ReportLinks


class ReportPage(BaseModel):
    items: list[ReportSummary]
    offset: int
    limit: int
    total: int
    next_offset: int | None = Field(description="the offset of the next page; null: no more")


class Report(ReportSummary):
    narrative_reason: str | None = Field(description="why the template narrative was used")
    week_end: date


class _Listing:
    """The reports built so far, re-read from the reports' folder on each refresh."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.entries: list[ReportEntry] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        entries = list_reports(self.state.settings)
        with self._lock:
            self.entries = entries


def install(state: ServingState) -> None:
    listing = _Listing(state)
    state.hold(__name__, listing, listing.refresh)


@router.get("/reports", summary="The reports this key may read, the newest week first")
def reports(
    request: Request,
    state: State,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100, description="reports per page")] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    latest: Annotated[bool, Query(description="only each scope's latest week")] = False,
) -> ReportPage:
    visible = [e for e in state.parts[__name__].entries if _sees(caller, e.scope)]
    if latest:  # the listing is newest first: each scope's first entry is its latest
        firsts: dict[str, ReportEntry] = {}
        for entry in visible:
            firsts.setdefault(entry.scope, entry)
        visible = list(firsts.values())
    page = visible[offset : offset + limit]
    more = offset + limit < len(visible)
    return ReportPage(
        items=[_summary(request, e) for e in page],
        offset=offset,
        limit=limit,
        total=len(visible),
        next_offset=offset + limit if more else None,
    )


@router.get("/reports/{scope}/{week}", summary="One report: when it was built, its links")
def report(
    request: Request, state: State, caller: Caller, scope: ScopeParam, week: WeekParam
) -> Report:
    entry = _visible(state, caller, scope, week)
    summary = _summary(request, entry)
    return Report(
        **summary.model_dump(),
        narrative_reason=entry.narrative_reason,
        week_end=date.fromordinal(entry.week.toordinal() + 6),
    )


@router.get(
    "/reports/{scope}/{week}/report.{kind}",
    summary="The report as HTML or PDF",
    response_class=FileResponse,
    responses={200: {"content": {MEDIA["html"]: {}, MEDIA["pdf"]: {}}}},
)
def report_file(
    state: State, caller: Caller, scope: ScopeParam, week: WeekParam, kind: Literal["html", "pdf"]
) -> FileResponse:
    entry = _visible(state, caller, scope, week)
    name = f"report.{kind}"
    return FileResponse(
        entry.file(name),
        media_type=MEDIA[kind],
        filename=f"report-{entry.scope}-{entry.week.isoformat()}.{kind}",
        content_disposition_type="inline",
    )


VIEWER = pages.page("report_viewer.html")
# fetches from this origin; the report in a sandboxed frame from a blob (its images are
# data: URIs)
VIEWER_HEADERS = pages.headers(VIEWER, "connect-src 'self'; frame-src blob:; img-src data: blob:")


@router.get(
    "/reports/{scope}/{week}/view",
    summary="A page that opens the report with the key of its #key= fragment (or asks it)",
    response_class=HTMLResponse,
)
def report_viewer(scope: ScopeParam, week: WeekParam) -> HTMLResponse:
    """For links from a browser (Superset's): a browser cannot send a key header on a
    link, so this page, which holds no data, fetches the report with one."""
    return HTMLResponse(VIEWER, headers=VIEWER_HEADERS)


def _sees(caller: Principal, scope: str) -> bool:
    """A region's key reads its region's reports; the whole business's is no region's."""
    return caller.sees(None if scope == WHOLE_BUSINESS else scope)


def _visible(state: ServingState, caller: Principal, scope: str, week: str) -> ReportEntry:
    try:
        if not _sees(caller, scope):
            entry = None
        elif week == LATEST:
            entry = next((e for e in list_reports(state.settings) if e.scope == scope), None)
        else:
            entry = find(state.settings, scope, week)
    except ReportError as exc:  # a well-formed date that is no date, or not a Monday
        raise Problem(422, f"week: {exc}", kind="invalid-request") from exc
    if entry is None:
        raise Problem(404, f"no report of {scope} for the week of {week}", kind="no-report")
    return entry


def _summary(request: Request, entry: ReportEntry) -> ReportSummary:
    base = str(request.url_for("report", scope=entry.scope, week=entry.week.isoformat()))
    return ReportSummary(
        scope=entry.scope,
        week=entry.week,
        built_at=entry.built_at,
        narrative_source="llm" if entry.narrative_source == "llm" else "template",
        links=ReportLinks(self=base, html=f"{base}/report.html", pdf=f"{base}/report.pdf"),
    )
