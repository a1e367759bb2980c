"""Superset's REST API: a client signed in as one user, and the export of the dashboards
as code (``lakehouse superset export``). The server is :mod:`lakehouse.supervisors.superset`.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lakehouse.contracts.marts import PUBLISHED_SCHEMA
from lakehouse.exceptions import ServiceError
from lakehouse.supervisors.superset import ASSETS_DIR

if TYPE_CHECKING:
    from lakehouse.supervisors.superset import SupersetServer


class SupersetClient:
    """Superset's REST API as one user (a bearer token from ``/api/v1/security/login``)."""

    def __init__(self, url: str, username: str, password: str, *, timeout: float = 120) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        response = self._http.post(
            "/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db"},
        )
        if response.status_code != 200:
            raise ServiceError(
                f"Superset at {self.url} refused the login of {username!r} "
                f"(HTTP {response.status_code})"
            )
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        self._csrf: str | None = None

    def get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params or None)
        if response.status_code != 200:
            raise ServiceError(
                f"Superset {path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return response

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        """A write: with the CSRF token of this session (Superset wants one besides the
        bearer token) and a Referer; the response as is, whatever its status."""
        if self._csrf is None:
            self._csrf = self.get("/api/v1/security/csrf_token/").json()["result"]
        headers = {"X-CSRFToken": str(self._csrf), "Referer": self.url}
        return self._http.post(path, json=payload, headers=headers)

    def execute_sql(self, database: str | int, sql: str) -> Any:
        """A query run in SQL Lab (synchronously), on the database of that name or id;
        the response as is."""
        if isinstance(database, str):
            database = self.database_id(database)
        payload = {
            "database_id": database,
            "sql": sql,
            "schema": PUBLISHED_SCHEMA,
            "runAsync": False,
            "select_as_cta": False,
            "queryLimit": 10000,
            "client_id": secrets.token_hex(5),  # one per query, as the SQL Lab page makes
            "tab": "lakehouse",
        }
        return self.post("/api/v1/sqllab/execute/", payload)

    def database_id(self, name: str) -> int:
        query = json.dumps({"filters": [{"col": "database_name", "opr": "eq", "value": name}]})
        found = self.get("/api/v1/database/", q=query).json()["result"]
        if not found:
            raise ServiceError(f"this user sees no Superset database named {name!r}")
        return int(found[0]["id"])

    def charts(self) -> list[dict[str, Any]]:
        """Every chart this user may see: id, uuid, name, type."""
        query = json.dumps({"page_size": 100, "columns": ["id", "uuid", "slice_name", "viz_type"]})
        return list(self.get("/api/v1/chart/", q=query).json()["result"])

    def chart_data(self, chart_id: int, *, format: str = "json") -> Any:
        """The chart's saved query run now (``format="csv"``: the CSV export)."""
        response = self.get(f"/api/v1/chart/{chart_id}/data/", format=format)
        return response.text if format == "csv" else response.json()["result"]

    def close(self) -> None:
        self._http.close()


def export_assets(server: SupersetServer, target: Path = ASSETS_DIR) -> int:
    """Every asset of the running Superset into ``target`` in Superset's export format,
    made stable for git: file names without the installation's ids, the database
    connection the one ``up`` replaces for each profile. Returns the files written."""
    s = server.settings
    client = SupersetClient(server.url, s.superset_admin_user, s.superset_admin_secret())
    try:
        archive = zipfile.ZipFile(io.BytesIO(client.get("/api/v1/assets/export/").content))
    finally:
        client.close()
    staging = target.with_name(target.name + ".export")
    shutil.rmtree(staging, ignore_errors=True)
    written = 0
    for name in archive.namelist():
        relative = Path(*Path(name).parts[1:])  # below the export's dated folder
        if relative.suffix != ".yaml":
            continue
        text = archive.read(name).decode()
        if relative.parts[0] == "databases":
            database = yaml.safe_load(text)
            database["sqlalchemy_uri"] = _PORTABLE_URI
            (database.get("extra") or {}).pop("engine_params", None)
            text = yaml.safe_dump(database, sort_keys=False)
        stem = relative.stem
        if relative.parts[0] in {"charts", "dashboards", "datasets"}:
            stem = stem.rsplit("_", 1)[0] if stem.rsplit("_", 1)[-1].isdigit() else stem
        path = staging / relative.with_name(stem + ".yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written += 1
    if not (staging / "metadata.yaml").exists():
        raise ServiceError("Superset's export has no metadata.yaml: nothing was changed")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return written


# the connection as committed: `up` replaces it with the profile's (DuckDB file or Trino)
_PORTABLE_URI = "duckdb:///published/lakehouse.duckdb"
