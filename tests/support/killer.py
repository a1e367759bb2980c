"""A `lakehouse` command run as a process and killed with SIGKILL while it works, then
started again, until stopped: what a crash-looping lander or capture looks like.

A kill is aimed at work in flight. With ``progress``, each process is killed only after
that count grew since it started (it has landed or captured something: a process that a
loaded machine has not yet started is not hit). With ``lease``, the killer then waits
until the process holds that lease of the lake (``lakehouse.lease``): the lander holds
``lander`` for each round, from reading the source to the silver apply, and sleeps
without it between rounds. Whether it held it is read from the kernel's lock table
(``/proc/locks``), without touching the lock, and counted in ``in_flight``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lakehouse.lease import Name, lock_path
from lakehouse.settings import Settings

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def lease_holders(path: Path) -> set[int]:
    """The pids holding a ``flock`` on the file at ``path``, from ``/proc/locks``."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return set()
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
            holders.add(int(fields[4]))
    return holders


class Killer:
    def __init__(
        self,
        settings: Settings,
        args: list[str],
        rng: random.Random,
        pause: tuple[float, float],
        *,
        progress: Callable[[], int] | None = None,
        progress_wait_s: float = 120.0,
        lease: Name | None = None,
        lease_wait_s: float = 30.0,
    ) -> None:
        self.log = settings.root / f"{args[0]}-killed.log"  # each process's output, for a failure
        self.progress, self.progress_wait_s = progress, progress_wait_s
        self.lease = lock_path(settings, lease) if lease else None
        self.lease_wait_s = lease_wait_s
        self.env = {
            **os.environ,
            "LAKEHOUSE_DATA_DIR": str(settings.root),
            "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
        }
        if settings.kafka_bootstrap_servers:
            self.env["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
        self.args, self.rng, self.pause = [LAKEHOUSE, *args], rng, pause
        self.kills = 0  # every SIGKILL sent to a running process
        self.in_flight = 0  # of which: while it held the lease
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=log
                )
            if self.progress is not None:
                self._wait_for_progress(proc)
            self.stop.wait(self.rng.uniform(*self.pause))
            holding = self._wait_for_lease(proc) if self.lease is not None else False
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                self.kills += 1
                self.in_flight += holding
            proc.wait(timeout=60)

    def _wait_for_progress(self, proc: subprocess.Popen[bytes]) -> None:
        assert self.progress is not None
        before = self.progress()
        deadline = time.monotonic() + self.progress_wait_s
        while (
            not self.stop.is_set()
            and proc.poll() is None
            and self.progress() == before
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)

    def _wait_for_lease(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether ``proc`` holds the lease, waiting up to ``lease_wait_s`` for it to."""
        assert self.lease is not None
        deadline = time.monotonic() + self.lease_wait_s
        while not self.stop.is_set() and proc.poll() is None:
            if proc.pid in lease_holders(self.lease):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


def delta_commits(settings: Settings) -> int:
    """Delta commits in the lake so far: grows as a lander lands."""
    return sum(1 for _ in (settings.root / "lake").glob("*/*/_delta_log/*.json"))


def change_log_bytes(settings: Settings) -> int:
    """Bytes in the change-event log so far: grows as the capture captures."""
    return sum(p.stat().st_size for p in settings.changes_path.glob("*/*.jsonl"))
