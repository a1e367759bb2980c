"""``/health`` (liveness) and ``/freshness``: what is published, and how old its data is.

The publication (``_publication``) and the latest gate run (``mart_pipeline_health``) are
read through the warehouse port by the background refresh, never in a request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from lakehouse.api.deps import Caller, State
from lakehouse.api.problems import Problem
from lakehouse.api.state import ServingState
from lakehouse.warehouse import connect

router = APIRouter(tags=["service"])

HEALTH_MART = "mart_pipeline_health"
_HEALTH_COLUMNS = (
    "run_id",
    "outcome",
    "checks_failed",
    "checks_warned",
    "dead_letters",
    "newest_source_commit_at",
    "finished_at",
)


class MartRows(BaseModel):
    mart: str
    rows: int


class Freshness(BaseModel):
    run_id: str = Field(description="the gate run that published what is served")
    data_run_id: str | None = Field(description="the run whose data the served marts hold")
    published_at: datetime
    newest_source_commit_at: datetime | None = Field(
        description="the newest source commit in the served data"
    )
    source_to_now_seconds: float | None = Field(
        description="now minus that commit: how stale the served data is"
    )
    last_run_outcome: str | None = Field(
        description="the latest gate run: published, published_with_warnings or blocked "
        "(blocked: the marts served are the previous run's)"
    )
    last_run_checks_failed: int | None
    marts: list[MartRows]


class _Published:
    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.publication: dict[str, Any] | None = None

    def refresh(self) -> None:
        with connect(self.state.settings) as marts:
            publication = marts.publication()
            if publication is None:
                self.publication = None
                return
            health: dict[str, Any] = {}
            if marts.exists(HEALTH_MART):
                rows = marts.query(
                    f"select {', '.join(_HEALTH_COLUMNS)} from {marts.qualified(HEALTH_MART)} "
                    "where is_latest_run"
                ).to_pylist()
                health = rows[0] if rows else {}
        self.publication = {"publication": publication, "health": health}


def install(state: ServingState) -> None:
    published = _Published(state)
    state.hold(__name__, published, published.refresh)


@router.get("/health", summary="Liveness: the process answers")
def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "profile": state.settings.profile}


@router.get("/freshness", summary="What is published, and how old its data is")
def freshness(state: State, caller: Caller) -> Freshness:
    found = state.parts[__name__].publication
    if found is None:
        raise Problem(
            503,
            "nothing is published yet: run `lakehouse demo` or `lakehouse build`",
            kind="not-published",
        )
    publication, health = found["publication"], found["health"]
    newest = health.get("newest_source_commit_at")
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return Freshness(
        run_id=publication.run_id,
        data_run_id=publication.data_run_id,
        published_at=publication.published_at,
        newest_source_commit_at=newest,
        source_to_now_seconds=(
            (datetime.now(UTC) - newest).total_seconds() if newest is not None else None
        ),
        last_run_outcome=health.get("outcome"),
        last_run_checks_failed=health.get("checks_failed"),
        marts=[MartRows(mart=m, rows=n) for m, n in sorted(publication.rows.items())],
    )
