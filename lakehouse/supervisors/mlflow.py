"""The MLflow tracking server as a local process under ``<stack_dir>/mlflow``.

Runs and experiments live in SQLite; artifacts are served by the server itself
(``--serve-artifacts``), so clients need no access to the artifact directory.

=========================  ===================================================
``mlflow/mlflow.db``       the tracking store (SQLite)
``mlflow/artifacts/``      the artifacts the server stores for its clients
``mlflow/mlflow.log``      the server's output
``mlflow/mlflow.pid``      the running server's process id
=========================  ===================================================
"""

from __future__ import annotations

import shutil
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import ServiceError
from lakehouse.supervisors.process import LocalProcess, ProcessService

if TYPE_CHECKING:
    from lakehouse.settings import Settings

START_TIMEOUT_S = 120.0  # the first start creates the database schema


class MlflowServer(ProcessService):
    """``mlflow server`` on ``127.0.0.1:<mlflow_port>`` with one worker process."""

    name = "mlflow"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.mlflow_port
        self.home = settings.stack_dir / "mlflow"
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self._health,
            env={
                "PYTHONUNBUFFERED": "1",
                # server-side jobs (GenAI evaluation, prompt optimisation) would start
                # eight more Python processes; the platform's ML jobs run as flows
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            start_timeout_s=START_TIMEOUT_S,
            ports={"mlflow_port": settings.mlflow_port},
        )

    @property
    def url(self) -> str:
        """The tracking URI clients use (``MLFLOW_TRACKING_URI``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend_store_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    def _command(self) -> list[str]:
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return [
            _mlflow_program(),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts_dir),
        ]

    def _health(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=3) as response:
            return bool(response.status == 200)


def _mlflow_program() -> str:
    """The ``mlflow`` script of this environment (not whichever is first on PATH)."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.exists():
        return str(beside)
    found = shutil.which("mlflow")
    if found is None:
        raise ServiceError("the `mlflow` program is not installed in this environment")
    return found
