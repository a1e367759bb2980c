"""The live path of the demo: the shop runs in PostgreSQL while Debezium captures it.

``run_live`` brings the operational database up, starts the connector, waits until it
streams from its replication slot (so every later change is streamed), runs
the simulator until the requested business date as fast as the database goes, then waits
until the connector has handed over every change the simulator committed, and stops it.
The topic log it leaves is what ``lakehouse ingest`` lands.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lakehouse import exceptions
from lakehouse.cdc.debezium import CaptureReport, capture
from lakehouse.exceptions import LakehouseError, SourceError
from lakehouse.oltp.client import connect
from lakehouse.oltp.cluster import Cluster
from lakehouse.oltp.simulate import SimulateParams, SimulateSummary, simulate
from lakehouse.progress import Progress
from lakehouse.settings import Settings

SLOT_TIMEOUT_S = 180.0  # the JVM and the connector start in ~10 s, much later when busy
DRAIN_IDLE_S = 2.0  # no batch for this long once every change is in: the connector is done
# the simulator reports progress several times a second while it commits: silence this
# long means it is stuck (a lock, a database that stopped answering)
SIMULATOR_SILENCE_S = 600.0


@dataclass
class LiveReport:
    simulated: SimulateSummary
    captured: CaptureReport
    expected_records: int  # change records the simulator's commits produce, at least
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulate": self.simulated.to_dict(),
            "captured_records": self.captured.records,
            "expected_records": self.expected_records,
            "seconds": round(self.seconds, 1),
        }


def expected_records(summary: SimulateSummary) -> int:
    """Records Debezium emits for the simulator's commits: one per row loaded and per
    change, and a tombstone after each delete."""
    deletes = sum(n for (_, op), n in summary.changes.items() if op == "d")
    return sum(summary.loaded.values()) + sum(summary.changes.values()) + deletes


def run_live(
    settings: Settings,
    params: SimulateParams,
    *,
    progress: Progress | None = None,
    notify: Callable[[str], None] = lambda m: None,
) -> LiveReport:
    """Simulate the shop up to ``params`` while capturing it; stop when all is captured."""
    started = time.monotonic()
    # the database up while it is simulated and captured; stopped after if it was down
    with Cluster(settings, notify=notify).running() as done:
        for line in done:
            notify(line)
        stop = threading.Event()
        seen = {"records": 0, "at": time.monotonic()}
        result: dict[str, Any] = {}
        capture_task = sim_task = commit_task = None
        if progress is not None:
            capture_task = progress.add_task("change events captured by Debezium", total=None)

        def on_batch(n: int) -> None:
            seen["records"] += n
            seen["at"] = time.monotonic()
            if progress is not None and capture_task is not None:
                progress.update(capture_task, completed=seen["records"])

        def run() -> None:
            try:
                result["report"] = capture(settings, stop=stop, on_batch=on_batch)
            except BaseException as exc:  # reported on the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=run, name="capture", daemon=True)
        thread.start()
        try:
            _wait_for_slot(settings, thread, result)
            if progress is not None:
                sim_task = progress.add_task("simulating the shop, days", total=_days(params))
                commit_task = progress.add_task("transactions committed", total=None)

            def on_progress(s: SimulateSummary) -> None:
                if progress is None or sim_task is None or commit_task is None:
                    return
                progress.update(commit_task, completed=s.transactions)
                if s.first_commit_us:
                    day = (s.last_commit_us or s.first_commit_us) - s.first_commit_us
                    progress.update(sim_task, completed=day // 86_400_000_000)

            summary = _simulate_in_child(settings, params, on_progress)
            if progress is not None and sim_task is not None and commit_task is not None:
                progress.update(sim_task, completed=_days(params))
                progress.update(commit_task, completed=summary.transactions)
                progress.update(commit_task, total=summary.transactions)
            expected = expected_records(summary)
            if progress is not None and capture_task is not None:
                progress.update(capture_task, total=max(expected, seen["records"]))
            _wait_drained(thread, result, seen, expected)
        finally:
            stop.set()
            thread.join(120)
    if "error" in result:
        raise result["error"]
    if "report" not in result:
        raise SourceError(
            f"Debezium did not stop within 120 s; see {settings.root / 'capture' / 'debezium.log'}"
        )
    return LiveReport(summary, result["report"], expected, time.monotonic() - started)


def _simulate_child(settings: Settings, params: SimulateParams, out: Any) -> None:
    def report(s: SimulateSummary) -> None:
        out.put(("progress", s.first_commit_us, s.last_commit_us, s.transactions))

    try:
        summary = simulate(settings, params, on_progress=report)
    except LakehouseError as exc:
        out.put(("error", type(exc).__name__, str(exc)))
        return
    summary.business = None  # its final state stays here: big, and not needed
    out.put(("done", summary))


def _simulate_in_child(
    settings: Settings, params: SimulateParams, on_progress: Callable[[SimulateSummary], None]
) -> SimulateSummary:
    """The simulator in a process of its own: in ours it would hold the GIL the capture
    handler (called from the JVM) needs, and the two would take turns."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_simulate_child, args=(settings, params, out), daemon=True)
    child.start()
    try:
        heard = time.monotonic()
        while True:
            try:
                message = out.get(timeout=1.0)
            except queue.Empty:
                if child.is_alive():
                    if time.monotonic() - heard > SIMULATOR_SILENCE_S:
                        child.terminate()  # stuck: not worth the join below
                        raise SourceError(
                            f"the simulator (pid {child.pid}) has said nothing for "
                            f"{SIMULATOR_SILENCE_S:.0f} s: is the database at "
                            f"{settings.oltp_host}:{settings.oltp_port} answering? "
                            "(`lakehouse oltp status`)"
                        ) from None
                    continue
                try:  # it may have said its last word between our wait and its exit
                    message = out.get(timeout=5.0)
                except queue.Empty:
                    raise SourceError(
                        f"the simulator stopped (exit code {child.exitcode})"
                    ) from None
            heard = time.monotonic()
            if message[0] == "progress":
                shown = SimulateSummary(resumed=False)
                shown.first_commit_us, shown.last_commit_us = message[1], message[2]
                shown.transactions = message[3]
                on_progress(shown)
            elif message[0] == "error":
                error = getattr(exceptions, message[1], exceptions.LakehouseError)
                raise error(message[2])
            else:
                summary: SimulateSummary = message[1]
                return summary
    finally:
        child.join(30)
        if child.is_alive():
            child.terminate()


def _days(params: SimulateParams) -> int | None:
    if params.until is None:
        return None
    return max(1, (params.until - params.start_date).days)


def _wait_for_slot(settings: Settings, thread: threading.Thread, result: dict[str, Any]) -> None:
    """Until the connector streams from its replication slot: every change committed from
    then on reaches it by streaming (what was there before came with its snapshot)."""
    slot = f"lakehouse_{settings.source_name}"
    deadline = time.monotonic() + SLOT_TIMEOUT_S
    with connect(settings, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                error = result.get("error")
                raise error if error else SourceError("capture stopped before it started")
            row = conn.execute(
                "select active from pg_replication_slots where slot_name = %s", [slot]
            ).fetchone()
            if row is not None and row[0]:  # in use: the snapshot is over, it streams
                return
            time.sleep(0.2)
    raise SourceError(
        f"Debezium did not start streaming from slot {slot} within {SLOT_TIMEOUT_S:.0f} s; "
        f"see {settings.root / 'capture' / 'debezium.log'}"
    )


def _wait_drained(
    thread: threading.Thread, result: dict[str, Any], seen: dict[str, Any], expected: int
) -> None:
    """Until the connector has handed over at least ``expected`` records and then nothing
    for DRAIN_IDLE_S (records redelivered after a restart count too, hence the pause)."""
    last_count, last_change = -1, time.monotonic()
    while thread.is_alive():
        now = time.monotonic()
        if seen["records"] != last_count:
            last_count, last_change = seen["records"], now
        if seen["records"] >= expected and now - seen["at"] >= DRAIN_IDLE_S:
            return
        if now - last_change > SLOT_TIMEOUT_S:
            raise SourceError(
                f"Debezium handed over {seen['records']:,} of {expected:,} change records "
                f"and nothing more for {SLOT_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.1)
    error = result.get("error")
    raise error if error else SourceError("capture stopped before it had every change")


def business_until(start: date, days: int) -> date:
    return start + timedelta(days=days)
