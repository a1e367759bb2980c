"""What every flow needs before it runs: the settings, Prefect's state kept under the
data directory, and progress reported to the flow run's log."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lakehouse.lineage.events import flow_job, new_run_id, parent_run
from lakehouse.settings import Settings, load_settings


def settings_for(data_dir: str | None) -> Settings:
    # a flow a Prefect worker runs writes the data directory for its user only, as the
    # CLI does (0700 directories, 0600 files)
    os.umask(0o077)
    settings = load_settings(**({"data_dir": data_dir} if data_dir else {}))
    use_prefect_home(settings)
    return settings


def use_prefect_home(settings: Settings) -> None:
    """Keep Prefect's database and logs under the data directory, unless the user points
    PREFECT_HOME elsewhere. Call it before Prefect reads its settings."""
    for key, value in settings.prefect_env().items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


class LoggedProgress:
    """The flows' :class:`lakehouse.progress.Progress`: log lines of the flow run (a worker
    has no terminal to draw bars on). A task logs when it starts, then at most once every
    ``every_s`` seconds with its rate and what is left, and once when it completes."""

    def __init__(self, log: Callable[[str], object], *, every_s: float = 10.0) -> None:
        self._log = log
        self._every_s = every_s
        self._tasks: list[_Task] = []

    def add_task(self, description: str, *, total: float | None = None) -> int:
        now = time.monotonic()
        self._tasks.append(_Task(description, total, started=now, logged=now))
        self._log(f"{description}: started" + (f", {total:,.0f} to do" if total else ""))
        return len(self._tasks) - 1

    def advance(self, task: int, steps: float = 1) -> None:
        t = self._tasks[task]
        self._report(t, completed=t.completed + steps)

    def update(
        self, task: int, *, completed: float | None = None, total: float | None = None
    ) -> None:
        t = self._tasks[task]
        if total is not None:
            t.total = total
        self._report(t, completed=t.completed if completed is None else completed)

    def _report(self, t: _Task, *, completed: float) -> None:
        t.completed = completed
        now = time.monotonic()
        done = t.total is not None and t.completed >= t.total
        if t.finished or not (done or now - t.logged >= self._every_s):
            return
        t.logged, t.finished = now, done
        elapsed = max(now - t.started, 1e-9)
        line = f"{t.description}: {t.completed:,.0f}"
        if t.total:
            line += f" of {t.total:,.0f} ({t.completed / t.total:.0%})"
        line += f" in {elapsed:.0f} s, {t.completed / elapsed:,.0f}/s"
        if t.total and not done and t.completed:
            left = (t.total - t.completed) * elapsed / t.completed
            line += f", about {left:.0f} s left"
        self._log(line)


@dataclass
class _Task:
    description: str
    total: float | None
    started: float
    logged: float
    completed: float = 0.0
    finished: bool = False


@contextmanager
def flow_progress() -> Iterator[LoggedProgress]:
    """Progress of the running flow, written to its run's log."""
    # Prefect reads PREFECT_HOME when it loads: the CLI imports this module before it
    # sets it (use_prefect_home)
    from prefect import get_run_logger

    yield LoggedProgress(get_run_logger().info)


@contextmanager
def flow_lineage(data_dir: str | None, flow: str) -> Iterator[None]:
    """The running flow as the parent run of the lineage events emitted in the block (the
    lander's, dbt's, the gate's; a subflow's run names its flow's): its OpenLineage run id
    is the Prefect flow run's id."""
    from prefect.runtime import flow_run  # Prefect reads PREFECT_HOME when it loads

    run_id = str(flow_run.id or new_run_id())
    with parent_run(settings_for(data_dir), flow_job(flow), run_id, name=flow_run.name):
        yield
