"""Apache Superset as a local process, with the dashboards of ``superset/assets``.

Superset pins libraries that clash with the project's, so it lives in a virtual
environment of its own, installed once from ``superset/requirements.txt`` into
``~/.cache/lakehouse/superset-<hash>``. Its state lives under ``<data_dir>/superset``:

===========================  ===========================================================
``superset_config.py``       written on each start from the settings (secret key, ports)
``superset.db``              the metadata database (SQLite): users, roles, charts
``superset.log``             the server's output; ``setup.log`` that of the set-up steps
===========================  ===========================================================

``start`` upgrades the metadata database, creates the admin user, imports the assets
(``superset/bootstrap.py``: re-importing updates them in place), creates the example
region roles and starts gunicorn. On ``local`` the database connection reads the
published DuckDB marts (read-only; the file is replaced whole on each publication and no
writer holds it), on ``stack`` Trino's catalog. Its REST API (and the export of the
assets) is :mod:`lakehouse.supervisors.superset_api`.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import ServiceError
from lakehouse.settings import PROJECT_DIR
from lakehouse.supervisors.process import LocalProcess, ProcessService

if TYPE_CHECKING:
    from collections.abc import Callable

    from lakehouse.settings import Settings

CACHE_ROOT = Path.home() / ".cache" / "lakehouse"
SUPERSET_DIR = PROJECT_DIR / "superset"
ASSETS_DIR = SUPERSET_DIR / "assets"
REQUIREMENTS = SUPERSET_DIR / "requirements.txt"
DATABASE_NAME = "lakehouse"
START_TIMEOUT_S = 180.0
SETUP_TIMEOUT_S = 600.0
INSTALL_TIMEOUT_S = 1200.0

_CONFIG = '''"""Written by `lakehouse superset up` from the settings: edit those, not this file."""

SECRET_KEY = {secret_key!r}
SQLALCHEMY_DATABASE_URI = {metadata_uri!r}
DATA_DIR = {data_dir!r}
# the published marts change on each publication: no result outlives a query
DATA_CACHE_CONFIG = {{"CACHE_TYPE": "NullCache"}}
CACHE_CONFIG = {{"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}}
RATELIMIT_STORAGE_URI = "memory://"
FEATURE_FLAGS = {{
    # row-level security also in SQL Lab: the region roles see their region only
    "RLS_IN_SQLLAB": True,
}}
# a Trino query over the lake may take a while on a cold cluster
SQLLAB_TIMEOUT = 300
SUPERSET_WEBSERVER_TIMEOUT = 300

# SQL a user writes needs the whole database, or a database that runs it as the user
# (superset/lakehouse_security.py): Superset's SQL parser is not a security boundary
import sys as _sys

_sys.path.insert(0, {security_dir!r})
from lakehouse_security import LakehouseSecurityManager  # noqa: E402

CUSTOM_SECURITY_MANAGER = LakehouseSecurityManager
# a second layer only: the connections themselves cannot read files or change settings
DISALLOWED_SQL_FUNCTIONS = {{
    "duckdb": {{
        "read_text", "read_blob", "read_csv", "read_csv_auto", "read_json", "read_json_auto",
        "read_json_objects", "read_ndjson", "read_parquet", "parquet_scan", "glob", "getenv",
        "query_table", "duckdb_secrets", "duckdb_settings", "current_setting",
        "pragma_database_list", "duckdb_databases", "duckdb_extensions",
    }},
}}
'''

# the DuckDB connections Superset opens: read-only, no file but the one opened, no
# extension, no attached database, no setting changed by a statement
_DUCKDB_LOCKED = {
    "read_only": True,
    "config": {"enable_external_access": False, "lock_configuration": True},
}


class SupersetServer(ProcessService):
    """Superset on ``http://127.0.0.1:<superset_port>``."""

    name = "superset"

    def __init__(
        self,
        settings: Settings,
        *,
        cache_root: Path = CACHE_ROOT,
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.settings = settings
        self.home = settings.root / "superset"
        self.venv = cache_root / f"superset-{_requirements_hash()}"
        self.notify = notify
        self._process = LocalProcess(
            self.name,
            self.home,
            self._command,
            self._health,
            env=self._env(),
            start_timeout_s=START_TIMEOUT_S,
            ports={"superset_port": settings.superset_port},
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.superset_port}"

    @property
    def config_path(self) -> Path:
        return self.home / "superset_config.py"

    def _bin(self, program: str) -> str:
        return str(self.venv / "bin" / program)

    # -- install ---------------------------------------------------------------------

    def install(self) -> Path:
        """Superset's virtual environment, created once per requirements file."""
        done = self.venv / ".installed"
        if done.exists():
            return self.venv
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        with self.venv.with_name(self.venv.name + ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it
            if done.exists():
                return self.venv
            self.notify(f"installing Superset into {self.venv} (once)")
            shutil.rmtree(self.venv, ignore_errors=True)
            python = _base_python()
            uv = _uv()
            if uv is not None:
                steps = [
                    [uv, "venv", "--quiet", "--python", python, str(self.venv)],
                    [uv, "pip", "install", "--quiet", "--python", self._bin("python"),
                     "-r", str(REQUIREMENTS)],
                ]  # fmt: skip
            else:
                steps = [
                    [python, "-m", "venv", str(self.venv)],
                    [self._bin("python"), "-m", "pip", "install", "--quiet", "-r",
                     str(REQUIREMENTS)],
                ]  # fmt: skip
            for step in steps:
                self._run(step, what="installing Superset", timeout=INSTALL_TIMEOUT_S)
            done.write_text(REQUIREMENTS.read_text())
        return self.venv

    # -- set-up ----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {
            "SUPERSET_CONFIG_PATH": str(self.config_path),
            "SUPERSET_HOME": str(self.home),
            "FLASK_APP": "superset",
            "PYTHONUNBUFFERED": "1",
            # Superset's own log lines, not every SQL statement
            "SUPERSET_LOG_LEVEL": "warning",
        }
        if self._trino_password():
            # requests lets this variable win over the connection's `verify`
            env["REQUESTS_CA_BUNDLE"] = str(self.settings.trino_certificate)
        return env

    def _trino_password(self) -> bool:
        s = self.settings
        return s.profile != "local" and s.trino_authentication == "password"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = _CONFIG.format(
            secret_key=self.settings.superset_key(),
            metadata_uri=f"sqlite:///{self.home / 'superset.db'}",
            data_dir=str(self.home / "data"),
            security_dir=str(SUPERSET_DIR),
        )
        self.config_path.write_text(text)
        self.config_path.chmod(0o600)  # it holds the secret key

    def database_uri(self) -> tuple[str, dict[str, Any]]:
        """The SQLAlchemy URI of the marts on this profile, and the connection's extras."""
        if self.settings.profile == "local":
            path = self.settings.published_warehouse
            return f"duckdb:///{path}", {"engine_params": {"connect_args": _DUCKDB_LOCKED}}
        s = self.settings
        if not self._trino_password():
            uri = f"trino://{s.trino_user}@{s.trino_host}:{s.trino_port}/{s.trino_catalog}"
            return uri, {"engine_params": {}}
        # the password goes to Superset's encrypted column on import, never into an export
        secret = urllib.parse.quote(s.trino_secret(), safe="")
        uri = f"trino://{s.trino_user}:{secret}@{s.trino_host}:{s.trino_port}/{s.trino_catalog}"
        https = {"http_scheme": "https", "verify": str(s.trino_certificate)}
        return uri, {"engine_params": {"connect_args": https}}

    def region_databases(self) -> dict[str, dict[str, Any]]:
        """On ``local``, one database per region: the region's published file, which holds
        only its rows, on a locked connection; a region role runs its SQL there. On
        ``stack`` none: Trino runs every statement as the user and filters the rows."""
        if self.settings.profile != "local":
            return {}
        return {
            region: {
                "uri": f"duckdb:///{self.settings.published_region(region)}",
                "extra": {"engine_params": {"connect_args": _DUCKDB_LOCKED}},
            }
            for region in self.settings.superset_region_roles
        }

    def setup(self) -> None:
        """The metadata database, the admin user, the assets and the region roles."""
        self.install()
        self.write_config()
        s = self.settings
        superset = self._bin("superset")
        self.notify("upgrading Superset's metadata database")
        self._run([superset, "db", "upgrade"], what="superset db upgrade")
        self._run(
            [superset, "fab", "create-admin", "--username", s.superset_admin_user,
             "--firstname", "Lakehouse", "--lastname", "Admin",
             "--email", f"{s.superset_admin_user}@lakehouse.invalid",
             "--password", s.superset_admin_secret()],
            what="superset fab create-admin",
        )  # fmt: skip
        # an existing admin keeps the password it was created with: set it to the setting's
        self._run(
            [superset, "fab", "reset-password", "--username", s.superset_admin_user,
             "--password", s.superset_admin_secret()],
            what="superset fab reset-password",
        )  # fmt: skip
        self.notify("initialising Superset's roles and permissions")
        self._run([superset, "init"], what="superset init")
        self.notify(f"importing the dashboards of {ASSETS_DIR} and the region roles")
        uri, extra = self.database_uri()
        spec = {
            "assets": str(ASSETS_DIR),
            "database_uri": uri,
            "database_extra": extra,
            # on Trino every statement runs as the Superset user, under Trino's rules
            "impersonate_user": s.profile != "local",
            "region_databases": self.region_databases(),
            "admin": s.superset_admin_user,
            "database": DATABASE_NAME,
            "regions": s.superset_region_roles,
            "passwords": {r: self.region_password(r) for r in s.superset_region_roles},
        }
        self._run(
            [self._bin("python"), str(SUPERSET_DIR / "bootstrap.py")],
            what="importing the assets",
            stdin=json.dumps(spec),
        )

    def region_password(self, region: str) -> str:
        return self.settings.generated_secret(f"superset-{region}_analyst.password")

    # -- run -------------------------------------------------------------------------

    def start(self) -> bool:
        """Set up (again: a running Superset gets the assets of now) and serve; False
        when it was already serving."""
        if not self._process.running():
            self._process.check_ports()  # before the set-up, which takes a while
        self.setup()
        self.notify("starting Superset")
        return self._process.start()

    def _command(self) -> list[str]:
        return [
            self._bin("gunicorn"),
            "--bind", f"127.0.0.1:{self.settings.superset_port}",
            "--workers", "1",
            "--worker-class", "gthread",
            "--threads", "8",
            "--timeout", "300",
            "--limit-request-line", "0",
            "--limit-request-field_size", "0",
            "superset.app:create_app()",
        ]  # fmt: skip

    def _health(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
            return bool(response.status == 200)

    def _run(
        self,
        command: list[str],
        *,
        what: str,
        timeout: float = SETUP_TIMEOUT_S,
        stdin: str | None = None,
    ) -> None:
        """A set-up step, its output appended to ``setup.log``; a failure is one line."""
        self.home.mkdir(parents=True, exist_ok=True)
        log_path = self.home / "setup.log"
        try:
            out = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env={**os.environ, **self._env()},
                cwd=self.home,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(f"{what} did not finish within {timeout:.0f} s") from None
        except OSError as exc:
            raise ServiceError(f"{what}: cannot run {command[0]}: {exc}") from None
        with log_path.open("a") as log:
            shown = [part if "password" not in prev else "***"
                     for prev, part in zip(["", *command], command, strict=False)]  # fmt: skip
            log.write(f"\n$ {' '.join(shown)}\n{out.stdout}{out.stderr}")
        if out.returncode != 0:
            lines = [line for line in (out.stderr or out.stdout).splitlines() if line.strip()]
            last = lines[-1].strip() if lines else "no output"
            raise ServiceError(f"{what} failed (exit code {out.returncode}): {last} "
                               f"(log: {log_path})")  # fmt: skip


def _requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]


def _base_python() -> str:
    """A Python 3.11 interpreter (the one running this, outside any virtualenv)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(base) if base.exists() else sys.executable


def _uv() -> str | None:
    """uv, when there is one: the Makefile's, or the first on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return found
    cached = sorted(glob.glob(str(CACHE_ROOT / "uv-*" / "bin" / "uv")))
    return cached[-1] if cached else None
