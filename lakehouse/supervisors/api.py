"""The serving API (``lakehouse api serve``) as a stack service under ``<stack_dir>/api``.

The process reads the same settings as the command that started it (data directory,
profile, config file), so on the stack it serves Trino's published marts, Redis's online
features and the MLflow server's registry. Its keys are the settings' or the generated
ones under ``<data_dir>/secrets`` (``lakehouse api keys`` says where).
"""

from __future__ import annotations

import sys
import urllib.request
from typing import TYPE_CHECKING

from lakehouse.supervisors.process import LocalProcess, ProcessService, settings_env

if TYPE_CHECKING:
    from lakehouse.settings import Settings

START_TIMEOUT_S = 180.0  # it imports Feast and MLflow and copies the search index first


class ApiServer(ProcessService):
    name = "api"

    def __init__(self, settings: Settings) -> None:
        self.host, self.port = settings.api_host, settings.api_port
        env = {"PYTHONUNBUFFERED": "1", **settings_env(settings)}
        self._process = LocalProcess(
            self.name,
            settings.stack_dir / "api",
            self._command,
            self._health,
            env=env,
            start_timeout_s=START_TIMEOUT_S,
            ports={"api_port": settings.api_port},
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "lakehouse.cli.main", "api", "serve"]

    def _health(self) -> bool:
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        with urllib.request.urlopen(f"http://{local}:{self.port}/health", timeout=3) as response:
            return bool(response.status == 200)
