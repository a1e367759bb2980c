"""Progress of long work, as a small protocol: the package reports it, whoever runs the
work shows it. The CLI draws bars on the terminal (``lakehouse.cli.console``); a flow
writes log lines to its run (``flows._runtime``). The package never imports either.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Tasks with an optional total (None: unknown yet), advanced as the work is done."""

    def add_task(self, description: str, *, total: float | None = None) -> int:
        """Start showing a task; returns its id for ``advance`` and ``update``."""
        ...

    def advance(self, task: int, steps: float = 1) -> None:
        """``steps`` more units of ``task`` are done."""
        ...

    def update(
        self, task: int, *, completed: float | None = None, total: float | None = None
    ) -> None:
        """Set how much of ``task`` is done, or its total (None: unchanged)."""
        ...
