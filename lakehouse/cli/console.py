"""Shared terminal output: one console, progress bars and the error line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


class Bars:
    """The CLI's :class:`lakehouse.progress.Progress`: a rich bar per task."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars

    def add_task(self, description: str, *, total: float | None = None) -> int:
        return self._bars.add_task(description, total=total)

    def advance(self, task: int, steps: float = 1) -> None:
        self._bars.advance(TaskID(task), steps)

    def update(
        self, task: int, *, completed: float | None = None, total: float | None = None
    ) -> None:
        self._bars.update(TaskID(task), completed=completed, total=total)


@contextmanager
def progress_bar() -> Iterator[Bars]:
    """Bars on the console while the block runs; they stay shown afterwards."""
    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bars:
        yield Bars(bars)
