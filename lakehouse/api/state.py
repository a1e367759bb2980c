"""The serving state one API process holds: the keys, and what it serves from memory
(refreshed in the background every ``api_refresh_seconds``: a new publication, a moved
model alias), so a request never waits for a file or the registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lakehouse.api.auth import Keys
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api")
T = TypeVar("T")


@dataclass
class ServingState:
    settings: Settings
    keys: Keys
    # refreshers run in a worker thread one after the other, every api_refresh_seconds;
    # each keeps serving what it had when a refresh fails (logged)
    refreshers: list[Callable[[], None]] = field(default_factory=list)
    # what each route module serves, by module (see :meth:`hold`)
    parts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> ServingState:
        return cls(settings, Keys(settings))

    def hold(self, name: str, part: T, *refresh: Callable[[], None]) -> T:
        """Keep ``part`` (what a route module serves) under ``name`` for this application,
        refreshed by ``refresh`` with the rest; routes find it in :attr:`parts`."""
        self.parts[name] = part
        self.refreshers.extend(refresh)
        return part

    def refresh_now(self) -> None:
        for refresh in self.refreshers:
            try:
                refresh()
            except Exception:  # keep serving the last good state
                log.exception("refresh failed: %s", getattr(refresh, "__qualname__", refresh))

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.api_refresh_seconds)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.refresh_now)
