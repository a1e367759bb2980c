"""What a soak run watches: `lakehouse` commands as processes that can be restarted, their
memory, the lake's files, and how far silver is behind the source's commits.

Silver's freshness is read from the Delta log alone (the ``max._source_ts`` statistic of
every live file, the source's commit time of the newest row), so sampling it every
second costs no data read and cannot slow the lander it watches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakehouse.lake import silver
from lakehouse.settings import Settings
from tests.support.killer import LAKEHOUSE


def lakehouse_env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "LAKEHOUSE_DATA_DIR": str(settings.root),
        "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
    }
    if settings.kafka_bootstrap_servers:
        env["LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


class Service:
    """A long-running `lakehouse` command (the capture, the lander), restarted on demand;
    its output goes to ``<data_dir>/<name>.log``."""

    def __init__(self, settings: Settings, name: str, args: list[str]) -> None:
        self.name, self.args, self.env = name, [LAKEHOUSE, *args], lakehouse_env(settings)
        self.log = settings.root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def restart(self, sig: signal.Signals) -> None:
        """Stop it with ``sig`` (SIGTERM: a clean stop; SIGKILL: a crash), start again."""
        self.stop(sig)
        self.restarts += 1
        self.start()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 90.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (the JVM is in-process)."""
        if not self.alive:
            return 0.0
        assert self.proc is not None
        try:
            parent = psutil.Process(self.proc.pid)
            procs = [parent, *parent.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs) / 2**20
        except psutil.NoSuchProcess:
            return 0.0


def newest_source_ts(uri: str) -> float | None:
    """The source commit time (epoch seconds) of the newest change in a silver table (its
    base or its tail: ``docs/silver-layout.md``), from the live files' statistics."""
    newest = [t for t in (_newest(uri), _newest(silver.tail_uri(uri))) if t is not None]
    return max(newest) if newest else None


def _newest(uri: str) -> float | None:
    try:
        actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True))
    except Exception:  # not there yet, or being committed to: the next sample reads it
        return None
    if actions.num_rows == 0 or "max._source_ts" not in actions.column_names:
        return None
    newest = pc.max(actions.column("max._source_ts")).as_py()
    return None if newest is None else newest.timestamp()


def lake_files(settings: Settings, layer: str) -> int:
    """Data files on disk under a layer of the lake (live or not)."""
    return sum(1 for _ in (settings.root / "lake" / layer).glob("**/*.parquet"))


def live_files(settings: Settings, layer: str) -> dict[str, int]:
    """Data files of each table's current version in a layer of the lake."""
    out = {}
    for path in sorted((settings.root / "lake" / layer).glob("*/_delta_log")):
        try:
            out[path.parent.name] = len(DeltaTable(str(path.parent)).file_uris())
        except Exception:  # being created or committed to: the next sample reads it
            continue
    return out


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.glob("**/*") if p.is_file()) / 2**20


@dataclass
class Sample:
    at: float  # seconds since the run began
    lag_s: float | None  # now minus the newest source commit in the watched silver table
    rss_mb: dict[str, float]
    silver_files: int  # on disk, live or not
    bronze_files: int
    live_silver_files: dict[str, int] | None  # per table, every ``live_every`` samples
    live_tail_files: dict[str, int] | None  # per silver table's tail, likewise


@dataclass
class Sampler:
    """Samples every ``every_s`` seconds in a thread until ``stop()``."""

    settings: Settings
    services: list[Service]
    watched: str  # the silver table whose freshness is sampled (a busy one)
    every_s: float = 1.0
    live_every: int = 10
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.began = time.monotonic()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        uri = self.settings.table_uri("silver", self.watched)
        n = 0
        while not self._stop.wait(self.every_s):
            newest = newest_source_ts(uri)
            n += 1
            self.samples.append(
                Sample(
                    at=time.monotonic() - self.began,
                    lag_s=None if newest is None else time.time() - newest,
                    rss_mb={s.name: s.rss_mb() for s in self.services},
                    silver_files=lake_files(self.settings, "silver"),
                    bronze_files=lake_files(self.settings, "bronze"),
                    live_silver_files=(
                        live_files(self.settings, "silver") if n % self.live_every == 0 else None
                    ),
                    live_tail_files=(
                        live_files(self.settings, "silver_tail")
                        if n % self.live_every == 0
                        else None
                    ),
                )
            )

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at < end]
