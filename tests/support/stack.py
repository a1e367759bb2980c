"""The stack for tests: services started through the CLI as a user would, on free
ports and a data directory of the test's own, and stopped with nothing left behind."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from lakehouse.settings import Settings
from tests.support.ports import free_port

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli.main"]
_PORTS = (
    "redis_port",
    "prefect_port",
    "mlflow_port",
    "kafka_port",
    "kafka_controller_port",
    "minio_port",
    "minio_console_port",
    "trino_port",
    "api_port",
)


@dataclass
class RunningStack:
    """The environment a test's stack runs with, and every process it started."""

    data_dir: Path
    env: dict[str, str]
    cwd: Path
    pids: set[int] = field(default_factory=set)
    up_seconds: float = 0.0
    up_output: str = ""

    def port(self, name: str) -> int:
        return int(self.env[f"LAKEHOUSE_{name.upper()}"])

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LAKEHOUSE, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
        )

    def status(self) -> dict[str, dict[str, object]]:
        out = self.cli("stack", "status", "--json", timeout=120)
        assert out.returncode == 0, out.stderr
        return {row["service"]: row for row in json.loads(out.stdout)}

    def record_processes(self) -> None:
        """Every service process (from the status) and all its descendants."""
        for row in self.status().values():
            pid = row["pid"]
            if isinstance(pid, int):
                self.pids.add(pid)
                with contextlib.suppress(psutil.NoSuchProcess):
                    self.pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))

    def leftovers(self) -> list[str]:
        """Processes still alive among those recorded, or running from the data dir."""
        left: list[str] = []
        marker = str(self.data_dir)
        for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
            info = proc.info
            if info["status"] == psutil.STATUS_ZOMBIE:
                continue
            mine = info["pid"] in self.pids
            cmdline = " ".join(info["cmdline"] or [])
            if mine or marker in cmdline or (info["cwd"] or "").startswith(marker):
                left.append(f"{info['pid']}: {cmdline[:200]}")
        return left


def stack_env(tmp_path: Path) -> dict[str, str]:
    """LAKEHOUSE_* variables for a stack of the test's own: free ports, a fresh data dir."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKEHOUSE_", "PREFECT_", "MLFLOW_"))
    }
    env["LAKEHOUSE_DATA_DIR"] = str(tmp_path / "data")
    for name in _PORTS:
        env[f"LAKEHOUSE_{name.upper()}"] = str(free_port())
    return env


@contextmanager
def running_stack(tmp_path: Path, services: list[str]) -> Iterator[RunningStack]:
    """``lakehouse stack up --only <services>``; on exit ``stack down``, then every
    process it started must be gone (any left over is killed and the test fails)."""
    cwd = tmp_path / "cwd"  # no lakehouse.yaml of the developer's is read
    cwd.mkdir(parents=True, exist_ok=True)
    stack = RunningStack(tmp_path / "data", stack_env(tmp_path), cwd)
    started = time.monotonic()
    try:
        up = stack.cli("stack", "up", "--only", *services)
        stack.record_processes()
        assert up.returncode == 0, f"stack up failed: {up.stderr}\n{up.stdout}"
        stack.up_seconds, stack.up_output = time.monotonic() - started, up.stdout
        yield stack
    finally:
        stack.record_processes()
        down = stack.cli("stack", "down", timeout=300)
        deadline = time.monotonic() + 10
        while (left := stack.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.5)
        for line in left:  # fail below, but leave nothing running for the next test
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(int(line.split(":")[0])).kill()
        assert down.returncode == 0, f"stack down failed: {down.stderr}"
        assert not left, f"processes left after `stack down`: {left}"


def lake_ports() -> dict[str, int]:
    """Free ports for a stack-profile lake of the test's own: MinIO's API and console,
    and Trino."""
    return {name: free_port() for name in ("minio_port", "minio_console_port", "trino_port")}


@contextmanager
def lake_services(settings: Settings) -> Iterator[None]:
    """MinIO and Trino of a stack-profile lake started in order, stopped in reverse
    whatever happens (a service that failed to start included)."""
    from lakehouse.supervisors.minio import MinioServer
    from lakehouse.supervisors.trino import TrinoServer

    servers = [MinioServer(settings), TrinoServer(settings)]
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in reversed(servers):
            server.stop()
