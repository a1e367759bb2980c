"""The demo's source of changes: the shop live in PostgreSQL captured by Debezium, or
the recorded Debezium files of the generator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from lakehouse.exceptions import ConfigError, OltpError
from lakehouse.settings import Settings
from lakehouse.supervisors.postgres_setup import find_bindir

Source = Literal["auto", "live", "files"]

_log = logging.getLogger(__name__)


def choose_source(
    settings: Settings, source: Source, *, warn: Callable[[str], object] = _log.warning
) -> Literal["live", "files"]:
    """``auto``: what the data directory already holds, else live when PostgreSQL is
    there (or can be installed), else the recorded files (and ``warn`` says why)."""
    recorded = (settings.changes_path / "manifest.json").exists()
    captured = (settings.root / "capture" / "offsets.dat").exists()
    if (source == "live" and recorded) or (source == "files" and captured):
        holds = "recorded files" if recorded else "live captures"
        raise ConfigError(
            f"{settings.root} holds {holds}: use another --data-dir for --source {source}"
        )
    if source != "auto":
        return source
    if recorded or captured:
        return "files" if recorded else "live"
    if not settings.oltp_managed:
        return "live"
    try:
        find_bindir()
    except OltpError as exc:
        warn(f"{exc}; the demo uses recorded change files")
        return "files"
    return "live"
