"""Routes of the API: see :mod:`lakehouse.api.app`."""

from __future__ import annotations

from fastapi import APIRouter

from lakehouse.api.state import ServingState

router = APIRouter()


def install(state: ServingState) -> None:
    """Register what these routes serve with the state (its refreshers)."""
