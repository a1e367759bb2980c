"""Run the dbt project with the environment the settings imply.

``dbt_project/profiles.yml`` reads every path and credential through ``env_var()``; this
module sets those variables from the settings and calls dbt's programmatic runner.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakehouse.exceptions import PipelineError
from lakehouse.settings import DBT_PROJECT_DIR, Settings


# dbt commands that accept --vars
_TAKES_VARS = {"build", "run", "test", "source", "compile", "docs", "ls", "list", "parse", "show"}


@dataclass(frozen=True)
class DbtResult:
    command: str
    succeeded: bool
    nodes: dict[str, int] = field(default_factory=dict)  # status -> count
    failures: list[str] = field(default_factory=list)


@contextmanager
def _dbt_environment(settings: Settings) -> Iterator[None]:
    """The settings in dbt's ``env_var()`` while dbt runs, and the environment as it was
    afterwards: the variables are ``LAKEHOUSE_*`` settings too, and must not leak into
    the next ``Settings`` this process builds."""
    variables = settings.dbt_env()
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_dbt(settings: Settings, args: list[str], *, raise_on_failure: bool = True) -> DbtResult:
    """Run ``dbt <args>`` in the project directory against the profile's target."""
    from dbt.cli.main import dbtRunner  # heavy import: only when dbt runs

    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    full = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        settings.dbt_target,
    ]
    if args and args[0] in _TAKES_VARS and "--vars" not in args:
        full += ["--vars", json.dumps(settings.dbt_vars())]
    try:
        with _dbt_environment(settings):
            result = dbtRunner().invoke(full)
    finally:
        _release_warehouse(settings)
    nodes: dict[str, int] = {}
    failures: list[str] = []
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node, "status", "unknown"))
        nodes[status] = nodes.get(status, 0) + 1
        if status in {"error", "fail", "runtime error"}:
            failures.append(f"{node.node.name}: {(node.message or status).strip()}")
    outcome = DbtResult(" ".join(args), bool(result.success), nodes, failures)
    if raise_on_failure and not result.success:
        detail = "; ".join(failures[:5]) or str(result.exception or "see the dbt log above")
        raise PipelineError(f"dbt {args[0]} failed: {detail}")
    return outcome


def _release_warehouse(settings: Settings) -> None:
    """dbt-duckdb keeps its DuckDB database open for the life of the process; close it so
    that other readers (status, analysts' read-only connections) can open the file."""
    if settings.dbt_target != "local":
        return
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()
    gc.collect()  # the last reference to the database instance may sit in a cycle
