"""Run the dbt project with the environment the settings imply.

``dbt_project/profiles.yml`` reads every path and credential through ``env_var()``; this
module sets those variables from the settings and calls dbt's programmatic runner.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lakehouse.exceptions import PipelineError
from lakehouse.progress import Progress
from lakehouse.settings import DBT_PROJECT_DIR, Settings
from lakehouse.transform.lineage import DbtLineage

# dbt commands that accept --vars
_TAKES_VARS = {"build", "run", "test", "source", "compile", "docs", "ls", "list", "parse", "show"}


@dataclass(frozen=True)
class NodeOutcome:
    """What dbt reported for one node (a model, a test, a source's freshness)."""

    unique_id: str
    name: str
    resource_type: str  # model, test, seed, source, ...
    status: str  # success, pass, warn, fail, error, skipped, runtime error
    severity: str | None  # a test's or a source freshness's configured severity
    failures: int | None  # rows a failing test returned
    message: str
    relation: str | None  # the model (for a test: the model it is attached to), or source.table
    age_seconds: float | None = None  # a source's freshness: now minus its newest row


@dataclass(frozen=True)
class DbtResult:
    command: str
    succeeded: bool
    nodes: dict[str, int] = field(default_factory=dict)  # status -> count
    failures: list[str] = field(default_factory=list)
    outcomes: list[NodeOutcome] = field(default_factory=list)


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


def run_dbt(
    settings: Settings,
    args: list[str],
    *,
    raise_on_failure: bool = True,
    progress: Progress | None = None,
    lineage_run: str | None = None,
) -> DbtResult:
    """Run ``dbt <args>`` in the project directory against the profile's target. With
    ``progress``, the nodes done are shown there instead of dbt's line per node (dbt runs
    ``--quiet``: its errors still print, and ``dbt.log`` keeps every line). With
    ``lineage_run`` (the gate's run id), each model built emits its lineage
    (:mod:`lakehouse.transform.lineage`)."""
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
    command = " ".join(itertools.takewhile(lambda arg: not arg.startswith("-"), args))
    shown = _NodeProgress(progress, f"dbt {command}") if progress is not None else None
    if shown is not None:
        full = ["--quiet", *full]
    try:
        lineage = DbtLineage(settings, args, lineage_run)
        with _dbt_environment(settings):
            result = dbtRunner(callbacks=[shown] if shown else []).invoke(full)
        lineage.emit(result)
        if shown is not None:
            shown.finish()
    finally:
        _release_warehouse(settings)
    nodes: dict[str, int] = {}
    failures: list[str] = []
    outcomes = []
    for node in (_outcome(r) for r in getattr(result.result, "results", None) or []):
        if node.status in {"error", "fail", "runtime error"}:
            failures.append(f"{node.name}: {node.message or node.status}")
        if node.resource_type == "operation":  # a hook (on-run-start): not a node built
            continue
        outcomes.append(node)
        nodes[node.status] = nodes.get(node.status, 0) + 1
    outcome = DbtResult(" ".join(args), bool(result.success), nodes, failures, outcomes)
    if raise_on_failure and not result.success:
        detail = "; ".join(failures[:5]) or str(result.exception or "see the dbt log above")
        raise PipelineError(f"dbt {args[0]} failed: {detail}")
    return outcome


class _NodeProgress:
    """A dbt event callback that shows the nodes done of a run in ``progress``: dbt
    announces each node's start with its index and the run's total (``LogStartLine``) and
    its end (``NodeFinished``; a skipped node has none, ``finish`` counts it). dbt calls
    it from its worker threads."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress, self.description = progress, description
        self.lock = threading.Lock()
        self.task: int | None = None
        self.total = 0

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name not in ("LogStartLine", "NodeFinished"):
            return
        with self.lock:
            if self.task is None and name == "LogStartLine":
                self.total = int(event.data.total)
                self.task = self.progress.add_task(self.description, total=self.total)
            elif self.task is not None and name == "NodeFinished":
                self.progress.advance(self.task)

    def finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.total)


def _outcome(result: Any) -> NodeOutcome:
    node = result.node
    resource_type = str(getattr(node, "resource_type", ""))
    config = getattr(node, "config", None)
    severity = getattr(config, "severity", None) if resource_type == "test" else None
    relation: str | None = None
    if resource_type == "test":
        attached = getattr(node, "attached_node", None)
        relation = attached.rsplit(".", 1)[-1] if attached else None
    elif resource_type == "source":
        relation = f"{node.source_name}.{node.name}"
    else:
        relation = getattr(node, "name", None)
    age = getattr(result, "age", None)  # freshness results only
    return NodeOutcome(
        unique_id=str(node.unique_id),
        name=str(node.name),
        resource_type=resource_type,
        status=str(getattr(result, "status", "unknown")),
        severity=str(severity).lower() if severity else None,
        failures=getattr(result, "failures", None),
        message=" ".join(str(getattr(result, "message", None) or "").split()),
        relation=relation,
        age_seconds=float(age) if age is not None else None,
    )


def _release_warehouse(settings: Settings) -> None:
    """dbt-duckdb keeps its DuckDB database open for the life of the process; close it so
    that other readers (status, analysts' read-only connections) can open the file."""
    if settings.dbt_target != "local":
        return
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()
    gc.collect()  # the last reference to the database instance may sit in a cycle
