"""A Prefect server and a process worker as local processes, so the deployments in
``prefect.yaml`` run on their schedules.

=================================  =============================================
``prefect/``                       the server's PREFECT_HOME (SQLite database)
``prefect/prefect-server.log``     the server's output
``prefect-worker/``                the worker's PREFECT_HOME, and its flow runs'
``prefect-worker/prefect-worker.log``  the worker's output, flow runs included
=================================  =============================================

Both start through the ``prefect`` program next to the running Python, so the worker's
flow runs import the same ``lakehouse`` package. The worker polls the work pool
``lakehouse`` (type ``process``), created when missing; its flow runs get the stack's
data directory and the project directory (``LAKEHOUSE_PROJECT_DIR``, where the pull step
of ``prefect.yaml`` moves them) in their environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import ServiceError
from lakehouse.settings import PROJECT_DIR
from lakehouse.supervisors.process import LocalProcess, ProcessService, settings_env

if TYPE_CHECKING:
    from lakehouse.settings import Settings

WORK_POOL = "lakehouse"
WORKER_NAME = "lakehouse-worker"
START_TIMEOUT_S = 180.0  # the first start migrates the database and copies the UI
_HTTP_TIMEOUT_S = 3.0


def prefect_program() -> str:
    """The ``prefect`` script of this environment (not whichever is first on PATH)."""
    beside = Path(sys.executable).parent / "prefect"
    if beside.exists():
        return str(beside)
    found = shutil.which("prefect")
    if found is None:
        raise ServiceError("the `prefect` program is not installed in this environment")
    return found


def _base_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry: no network here
        "PREFECT_CLI_PROMPT": "false",
        "PYTHONUNBUFFERED": "1",
    }


class PrefectServer(ProcessService):
    """``prefect server start`` on ``127.0.0.1:<prefect_port>`` (API and UI)."""

    name = "prefect-server"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.prefect_port
        self.home = settings.stack_dir / "prefect"
        env = _base_env(self.home)
        env["PREFECT_API_URL"] = self.api_url  # the UI and the server's own client
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self._health,
            env=env,
            start_timeout_s=START_TIMEOUT_S,
            ports={"prefect_port": settings.prefect_port},
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def _command(self) -> list[str]:
        return [
            prefect_program(),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--analytics-off",
            "--no-background",
        ]

    def _health(self) -> bool:
        return _api(self.api_url, "GET", "/health") is True


class PrefectWorker(ProcessService):
    """``prefect worker start --pool lakehouse --type process`` against the stack's
    server; healthy once it runs and has sent the pool a heartbeat since it started."""

    name = "prefect-worker"

    def __init__(self, settings: Settings) -> None:
        self.server = PrefectServer(settings)
        self.home = settings.stack_dir / "prefect-worker"
        env = _base_env(self.home)
        env.update(
            {
                "PREFECT_API_URL": self.server.api_url,
                "PREFECT_WORKER_QUERY_SECONDS": "5",
                # the flow runs: the stack's settings and where the project's flows are
                "LAKEHOUSE_PROJECT_DIR": str(PROJECT_DIR),
                **settings_env(settings),
            }
        )
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self._registered,
            env=env,
            start_timeout_s=START_TIMEOUT_S,
        )

    @property
    def url(self) -> str:
        return f"{self.server.url}/work-pools/work-pool/{WORK_POOL}"

    def start(self) -> bool:
        """Create the work pool when missing, then start the worker; needs the server."""
        if self.running():
            return self._process.start()
        if not self.server.healthy():
            raise ServiceError(
                f"cannot start the Prefect worker: no Prefect server answers at "
                f"{self.server.api_url} (start it first: `lakehouse stack up --only "
                "prefect-server`)"
            )
        self.ensure_work_pool()
        return self._process.start()

    def ensure_work_pool(self) -> None:
        """The process work pool ``lakehouse``, with Prefect's default job template."""
        try:
            if _api(self.server.api_url, "GET", f"/work_pools/{WORK_POOL}") is not None:
                return
        except OSError as exc:
            raise ServiceError(
                f"cannot reach the Prefect server at {self.server.api_url}: {exc}"
            ) from None
        env = {**os.environ, **(self._process.env or {})}
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [prefect_program(), "work-pool", "create", WORK_POOL, "--type", "process"],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.home,
        )
        if done.returncode != 0 and "already exists" not in done.stdout + done.stderr:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise ServiceError(f"cannot create the work pool {WORK_POOL!r}: {lines[-1]}")

    def _command(self) -> list[str]:
        return [
            prefect_program(),
            "worker",
            "start",
            "--pool",
            WORK_POOL,
            "--type",
            "process",
            "--name",
            WORKER_NAME,
            "--install-policy",
            "never",
            "--no-prompt",
        ]

    def _registered(self) -> bool:
        started = self._started_at()
        if started is None:
            return False
        workers = _api(self.server.api_url, "POST", f"/work_pools/{WORK_POOL}/workers/filter", {})
        for worker in workers or []:
            if worker.get("name") == WORKER_NAME and worker.get("last_heartbeat_time"):
                beat = datetime.fromisoformat(worker["last_heartbeat_time"])
                if beat.timestamp() >= started - 1:
                    return True
        return False

    def _started_at(self) -> float | None:
        if self._process.pid() is None:
            return None
        try:
            return self._process.pid_path.stat().st_mtime
        except OSError:
            return None


def _api(api_url: str, method: str, path: str, body: Any = None) -> Any:
    """One call to the Prefect REST API: the decoded JSON, or None on 404."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{api_url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
