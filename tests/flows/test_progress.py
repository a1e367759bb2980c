"""The flows' progress: log lines, not bars; few of them, and the end always told."""

from __future__ import annotations

import pytest

from flows import _runtime
from flows._runtime import LoggedProgress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(_runtime.time, "monotonic", c)
    return c


def test_a_task_logs_its_start_every_interval_and_its_end_once(clock: _Clock) -> None:
    lines: list[str] = []
    progress = LoggedProgress(lines.append, every_s=10.0)
    task = progress.add_task("landing change events", total=1000)
    assert lines == ["landing change events: started, 1,000 to do"]
    for _ in range(5):  # within the interval: quiet
        clock.now += 1
        progress.advance(task, 50)
    assert len(lines) == 1
    clock.now += 10
    progress.advance(task, 250)  # 500 of 1000 after 15 s
    assert lines[-1] == ("landing change events: 500 of 1,000 (50%) in 15 s, 33/s, about 15 s left")
    progress.update(task, completed=1000)
    progress.advance(task, 0)
    assert lines[-1] == "landing change events: 1,000 of 1,000 (100%) in 15 s, 67/s"
    assert len(lines) == 3


def test_a_task_without_a_total_reports_its_count(clock: _Clock) -> None:
    lines: list[str] = []
    progress = LoggedProgress(lines.append, every_s=5.0)
    task = progress.add_task("capturing with Debezium")
    clock.now += 6
    progress.update(task, completed=1200)
    assert lines[-1] == "capturing with Debezium: 1,200 in 6 s, 200/s"
    progress.update(task, total=1200)  # the total learnt at the end completes it
    assert lines[-1] == "capturing with Debezium: 1,200 of 1,200 (100%) in 6 s, 200/s"
    clock.now += 60
    progress.advance(task, 0)
    assert len(lines) == 3
