"""One writer at a time: a lease per lake for the lander and one for the build.

Two landers on one lake would each plan a batch on the same bronze snapshot; two builds
would write the same DuckDB build file and publish over each other. A lease makes the
second one wait (up to ``lease_wait_seconds``), then give up with one line that names the
holder. The lease is an exclusive ``flock`` on ``<data_dir>/locks/<name>.lock``: the kernel
releases it when its process ends, however it ends (``kill -9`` included), so a crash
never leaves a stale lease behind. The file holds who took it (pid, host, command, since).

It serialises every process that shares the data directory: the CLI, the Prefect
worker and, in compose, the ``lander`` service (one volume). Writers on other machines
of a lake on S3 are kept apart by the Delta commit itself (``lakehouse.lake.delta``),
not by this lease: see docs/concurrency.md.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from lakehouse.exceptions import LakeBusy
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

Name = Literal["lander", "build", "maintain"]
_WHAT = {
    "lander": "a lander (ingest, dlq replay)",
    "build": "a build (build, transform flow)",
    "maintain": "a table maintenance (maintain, maintain flow)",
}
_POLL_SECONDS = 0.2

# Re-entrant within a process (an ingest inside a flow that holds the lease already);
# other threads of the process wait on the thread lock as other processes on the file.
_held: dict[Path, tuple[threading.RLock, list[int]]] = {}
_held_guard = threading.Lock()


def lock_path(settings: Settings, name: Name) -> Path:
    return settings.root / "locks" / f"{name}.lock"


@contextmanager
def hold(settings: Settings, name: Name, *, wait: float | None = None) -> Iterator[None]:
    """Hold the ``name`` lease of the lake while the block runs; wait up to ``wait``
    seconds (default ``settings.lease_wait_seconds``) for another holder to finish, then
    raise :class:`LakeBusy` naming it."""
    path = lock_path(settings, name)
    wait = settings.lease_wait_seconds if wait is None else wait
    with _held_guard:
        thread_lock, depth = _held.setdefault(path, (threading.RLock(), [0]))
    deadline = time.monotonic() + wait
    if not thread_lock.acquire(timeout=max(wait, 0.001)):
        raise LakeBusy(_busy_message(name, path, wait))
    try:
        if depth[0] > 0:  # this thread holds it already
            depth[0] += 1
            try:
                yield
            finally:
                depth[0] -= 1
            return
        fd = _acquire(name, path, deadline, wait)
        depth[0] = 1
        try:
            yield
        finally:
            depth[0] = 0
            os.close(fd)  # closing the descriptor releases the flock
    finally:
        thread_lock.release()


def holder(settings: Settings, name: Name) -> dict[str, object] | None:
    """Who holds the lease now, or None when nobody does."""
    path = lock_path(settings, name)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    finally:
        os.close(fd)
    return None


def _acquire(name: Name, path: Path, deadline: float, wait: float) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    warned = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LakeBusy(_busy_message(name, path, wait)) from None
            if not warned:
                log.warning("waiting for %s", _describe(name, _read_holder(path)))
                warned = True
            time.sleep(_POLL_SECONDS)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv else "",
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    return fd


def _read_holder(path: Path) -> dict[str, object] | None:
    try:
        found = json.loads(path.read_text() or "null")
    except (OSError, ValueError):  # being rewritten by a new holder
        return None
    return found if isinstance(found, dict) else None


def _describe(name: Name, who: dict[str, object] | None) -> str:
    if not who:
        return f"{_WHAT[name]} that holds the lease"
    return (
        f"{_WHAT[name]}: pid {who.get('pid')} on {who.get('host')} "
        f"(`{who.get('command')}`) since {who.get('since')}"
    )


def _busy_message(name: Name, path: Path, wait: float) -> str:
    return (
        f"the lake is busy: {_describe(name, _read_holder(path))} holds the {name} lease "
        f"({path}); waited {wait:g} s. Let it finish, stop it, or raise lease_wait_seconds"
    )
