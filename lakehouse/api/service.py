"""``/health``: the process answers, and what it serves is loaded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lakehouse.api.deps import State
from lakehouse.api.state import ServingState

router = APIRouter(tags=["service"])


def install(state: ServingState) -> None:
    """Nothing to refresh."""


@router.get("/health", summary="Liveness: the process answers")
def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "profile": state.settings.profile}
