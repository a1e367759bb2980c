"""A service run as a detached local process: a home directory, a pid file, a log file
and a health check.

``lakehouse stack up`` starts each service with :meth:`LocalProcess.start`; the process
outlives the command (a session of its own) and ``stack down`` finds it again by its pid
file. Starting a service that already answers its health check is a no-op.

The pid file holds the process's id and its start time (``/proc/<pid>/stat``): after a
crash or a reboot the id may belong to another program, which must never be signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import ServiceError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 5


class LocalProcess:
    """One process of a service: ``<home>/<name>.pid`` and ``<home>/<name>.log``."""

    def __init__(
        self,
        name: str,
        home: Path,
        command: Callable[[], Sequence[str]],
        healthy: Callable[[], bool],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        """``ports``: the setting naming each port the process listens on, to refuse a
        port another program holds before starting (the process would fail to bind, or
        worse, the other program would answer the health check)."""
        self.name = name
        self.home = home.resolve()
        self._command = command
        self._healthy = healthy
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.ports = dict(ports or {})

    @property
    def pid_path(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    def pid(self) -> int | None:
        """The running process's id, or None. A stale pid file is removed: its process
        is gone, or its id now belongs to another program (which is left alone)."""
        try:
            fields = self.pid_path.read_text().split()
            pid = int(fields[0])
            started = int(fields[1]) if len(fields) > 1 else None
        except (OSError, ValueError, IndexError):
            return None
        if not pid_alive(pid):
            self.pid_path.unlink(missing_ok=True)
            return None
        if self._is_ours(pid, started):
            return pid
        self.pid_path.unlink(missing_ok=True)
        log.warning(
            "%s: pid %d of %s is now another program (%s): not signalled, pid file removed",
            self.name,
            pid,
            self.pid_path,
            process_command(pid) or "?",
        )
        return None

    def _is_ours(self, pid: int, started: int | None) -> bool:
        """The process is the one we started: same start time; for a pid file without one
        (written by an older version), its working directory is the one we gave it."""
        if started is not None:
            return process_start_time(pid) == started
        cwd = process_cwd(pid)
        return cwd is None or cwd == (self.cwd or self.home).resolve()

    def running(self) -> bool:
        return self.pid() is not None

    def healthy(self) -> bool:
        try:
            return self._healthy()
        except Exception:
            return False

    def start(self) -> bool:
        """Start the process and wait for its health check; False when it already ran."""
        if self.running():
            self.wait_healthy()
            return False
        self.check_ports()
        self.home.mkdir(parents=True, exist_ok=True)
        command = list(self._command())
        env = {**os.environ, **self.env} if self.env is not None else None
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd or self.home,
                    env=env,
                    start_new_session=True,  # outlives `stack up`; stopped as a group
                )
            except OSError as exc:
                raise ServiceError(f"cannot start {self.name} ({command[0]}): {exc}") from None
        started = process_start_time(process.pid)
        self.pid_path.write_text(f"{process.pid} {started if started is not None else ''}\n")
        try:
            self.wait_healthy(process)
        except ServiceError:
            self.stop()
            raise
        return True

    def check_ports(self) -> None:
        """Refuse to start on a port another program holds, naming the setting."""
        for setting, port in self.ports.items():
            check_port_free(port, setting)

    def wait_healthy(self, process: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not self.healthy():
            if process is not None and process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {process.returncode} while starting: "
                    f"{self.log_tail()} (log: {self.log_path})"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} did not become healthy within {self.start_timeout_s:.0f} s: "
                    f"{self.log_tail()} (log: {self.log_path})"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM to the process group, SIGKILL after ``timeout_s``; False when it did
        not run."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        wait_exited(pid, timeout_s)
        _signal_group(pid, signal.SIGKILL)  # the leader or any child still there
        wait_exited(pid, 10)
        self.pid_path.unlink(missing_ok=True)
        return True

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in lines[-_LOG_TAIL_LINES:]) or "(empty log)"


class ProcessService:
    """A service run by one :class:`LocalProcess` (``self._process``): its life cycle is
    the process's; subclasses override ``start``/``stop``/``healthy`` to add steps."""

    _process: LocalProcess

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def pid(self) -> int | None:
        return self._process.pid()

    def running(self) -> bool:
        return self._process.running()

    def healthy(self) -> bool:
        return self._process.healthy()

    def start(self) -> bool:
        return self._process.start()

    def stop(self) -> bool:
        return self._process.stop()


def settings_env(settings: Settings) -> dict[str, str]:
    """What a child process running the project's code needs to read the same settings
    as the command that started it: the data directory, the profile, the config file."""
    env = {"LAKEHOUSE_DATA_DIR": str(settings.root), "LAKEHOUSE_PROFILE": settings.profile}
    config = Path(os.environ.get("LAKEHOUSE_CONFIG", "lakehouse.yaml"))
    if config.exists():
        env["LAKEHOUSE_CONFIG"] = str(config.resolve())
    return env


def check_port_free(port: int, setting: str, host: str = "127.0.0.1") -> None:
    """A bind test: a ``ServiceError`` naming the port and the setting to change when
    another program listens on it (a socket in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ServiceError(
                f"port {port} ({setting}) is in use by another program: "
                f"stop it, or choose another port with LAKEHOUSE_{setting.upper()} (or "
                f"{setting} in lakehouse.yaml)"
            ) from None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def process_start_time(pid: int) -> int | None:
    """When the process started (clock ticks after boot, ``/proc/<pid>/stat`` field 22):
    with the pid, it names one process, since no two live at once with both."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name, in parentheses, may hold spaces
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_cwd(pid: int) -> Path | None:
    """The process's working directory, or None when it cannot be read."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def process_command(pid: int) -> str:
    """The process's command line, for messages ('' when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a JVM's main thread may exit (the process shows as a zombie) while its other
    # threads still run: the process is gone only when every thread is
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            if (task / "stat").read_text().split(")")[-1].split()[0] != "Z":
                return True
        except OSError:
            continue
    return False


def wait_exited(pid: int, timeout_s: float) -> bool:
    """Until ``pid`` has exited (reaped, when it is our child); whether it did in time."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def last_line(text: str) -> str:
    """The last non-empty line of a program's (or a driver's) message, for a one-line error."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
