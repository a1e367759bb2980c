"""dbt's lineage: an OpenLineage run per model that a build (or run) built, from dbt's own
record of it, with the gate's build run as parent.

- **what ran** (status, start and end): the run results dbt's runner returns in memory
  (the content of ``run_results.json``, read in memory because ``target/`` is shared by
  every dbt run of the checkout);
- **the graph and the columns**: the model nodes of those results, and ``manifest.json``
  for parents that did not run in this invocation (only when it is this invocation's:
  its ``invocation_id`` says so), the data contracts for the lake tables' columns;
- **inputs**: each parent, a model (the build area's table) or a lake table (a dbt source:
  ``<lake>/<source>/<table>``) with the Delta version dbt read: the version when the run
  started and when it ended (the same unless a lander committed meanwhile; then
  ``version`` is left unset and both are given);
- **column lineage** (``columnLineage``), at the model level: each documented column of
  the model is linked to the columns of the same name in its direct parents. A column
  computed under a new name has no column-level input (the dataset-level lineage holds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openlineage.client.event_v2 import RunState
from openlineage.client.facet_v2 import (
    BaseFacet,
    column_lineage_dataset,
    dataset_version_dataset,
    schema_dataset,
)

from lakehouse.contracts import load_source_contracts
from lakehouse.lake import delta
from lakehouse.lineage.events import (
    DeltaVersionDatasetFacet,
    LakehouseRunFacet,
    RunRef,
    dbt_job,
    emit,
    lake_dataset,
    run_id_for,
    warehouse_namespace,
)
from lakehouse.lineage.runs import build_ref
from lakehouse.settings import DBT_PROJECT_DIR, Settings
from lakehouse.transform.sources import lake_schemas

log = logging.getLogger(__name__)

_BUILDS = {"build", "run"}  # commands that build models
_SAME_NAME = "the column of the same name in a parent (dbt depends_on)"


@dataclass
class _Node:
    unique_id: str
    name: str
    database: str | None
    schema: str | None
    alias: str
    columns: dict[str, str | None] = field(default_factory=dict)  # name -> data type
    parents: list[str] = field(default_factory=list)


class DbtLineage:
    """Watches one dbt invocation: :meth:`emit` after it, with dbt's result."""

    def __init__(self, settings: Settings, args: list[str], build_run: str | None) -> None:
        self.settings = settings
        self.build_run = build_run
        self.active = build_run is not None and bool(args) and args[0] in _BUILDS
        self.at_start: dict[tuple[str, str], int | None] = {}
        if self.active:
            try:
                self.at_start = {
                    (layer, name): _version(settings, layer, name)
                    for name in load_source_contracts(settings)
                    for layer in ("silver", "bronze")
                }
            except Exception as exc:  # lineage never stops a build
                log.warning("lineage: lake versions not read: %s", exc)

    def emit(self, result: Any) -> None:
        if not self.active:
            return
        try:
            self._emit(result)
        except Exception as exc:  # lineage never stops a build
            log.warning("lineage of the dbt run not recorded: %s", " ".join(str(exc).split()))

    def _emit(self, result: Any) -> None:
        settings, build_run = self.settings, str(self.build_run)
        ran = [r for r in getattr(result.result, "results", None) or [] if _is_model(r)]
        if not ran:
            return
        nodes = _manifest_nodes()
        for r in ran:
            nodes[str(r.node.unique_id)] = _node(r.node)
        contracts = load_source_contracts(settings)
        parent = build_ref(settings, build_run)
        warehouse = warehouse_namespace(settings)
        for r in ran:
            node = nodes[str(r.node.unique_id)]
            inputs: list[tuple[str, str, Mapping[str, BaseFacet]]] = []
            columns_of: dict[tuple[str, str], dict[str, str | None]] = {}
            for uid in node.parents:
                dataset = self._input(uid, nodes, contracts, warehouse)
                if dataset is None:
                    continue
                namespace, name, facets, columns = dataset
                inputs.append((namespace, name, facets))
                columns_of[(namespace, name)] = columns
            output = (
                warehouse,
                _relation(node),
                {
                    "schema": schema_dataset.SchemaDatasetFacet(
                        fields=[
                            schema_dataset.SchemaDatasetFacetFields(name=c, type=t)
                            for c, t in node.columns.items()
                        ]
                    ),
                    "columnLineage": _column_lineage(node, columns_of),
                },
            )
            ref = RunRef(
                settings.lineage_namespace,
                dbt_job(node.name),
                run_id_for(f"{build_run}/{node.unique_id}"),
            )
            started, ended = _timing(r)
            facets = {
                "lakehouse": LakehouseRunFacet(
                    node.unique_id, {"buildRun": build_run, "status": str(r.status)}
                )
            }
            common: dict[str, Any] = {
                "parent": parent,
                "run_facets": facets,
                "job_type": "MODEL",
                "integration": "DBT",
            }
            emit(settings, RunState.START, ref, at=started, **common)
            emit(
                settings,
                RunState.COMPLETE if str(r.status) == "success" else RunState.FAIL,
                ref,
                inputs=inputs,
                outputs=[output],
                at=ended,
                **common,
            )

    def _input(
        self,
        uid: str,
        nodes: dict[str, _Node],
        contracts: Mapping[str, Any],
        warehouse: str,
    ) -> tuple[str, str, dict[str, BaseFacet], dict[str, str | None]] | None:
        kind, _, rest = uid.partition(".")
        if kind == "source":
            layer, table = rest.split(".")[-2:]
            namespace, name = lake_dataset(self.settings, layer, table)
            start = self.at_start.get((layer, table))
            end = _version(self.settings, layer, table)
            if (layer, table) not in self.at_start:
                start = end  # not a source table: nothing lands in it during a build
            read = start if start == end else None
            facets: dict[str, BaseFacet] = {
                "lakehouse_delta": DeltaVersionDatasetFacet(read, start, end)
            }
            if read is not None:
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(str(read))
            columns: dict[str, str | None] = {}
            if layer in ("silver", "bronze") and table in contracts:
                schema = lake_schemas(contracts[table])[layer]
                columns = {f.name: str(f.type) for f in schema}
            return namespace, name, facets, columns
        node = nodes.get(uid)
        if node is None:  # a parent this invocation knows nothing of
            return None
        return warehouse, _relation(node), {}, node.columns


def _is_model(result: Any) -> bool:
    return str(getattr(result.node, "resource_type", "")) == "model" and str(result.status) in (
        "success",
        "error",
    )


def _node(node: Any) -> _Node:
    return _Node(
        unique_id=str(node.unique_id),
        name=str(node.name),
        database=node.database,
        schema=node.schema,
        alias=str(node.alias or node.name),
        columns={str(c): getattr(info, "data_type", None) for c, info in node.columns.items()},
        parents=list(node.depends_on.nodes),
    )


def _manifest_nodes() -> dict[str, _Node]:
    """The models of ``target/manifest.json`` when this invocation wrote it."""
    from dbt_common.invocation import get_invocation_id  # dbt: loaded with the runner

    path = DBT_PROJECT_DIR / "target" / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if manifest.get("metadata", {}).get("invocation_id") != get_invocation_id():
        return {}  # another dbt run's: its nodes may be another target's
    found = {}
    for uid, raw in manifest.get("nodes", {}).items():
        if raw.get("resource_type") != "model":
            continue
        found[uid] = _Node(
            unique_id=uid,
            name=raw["name"],
            database=raw.get("database"),
            schema=raw.get("schema"),
            alias=raw.get("alias") or raw["name"],
            columns={c: i.get("data_type") for c, i in (raw.get("columns") or {}).items()},
            parents=list((raw.get("depends_on") or {}).get("nodes", [])),
        )
    return found


def _relation(node: _Node) -> str:
    return ".".join(p for p in (node.database, node.schema, node.alias) if p)


def _column_lineage(
    node: _Node, columns_of: Mapping[tuple[str, str], Mapping[str, object]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    fields = {}
    for column in node.columns:
        inputs = [
            column_lineage_dataset.InputField(namespace=ns, name=name, field=column)
            for (ns, name), columns in columns_of.items()
            if column in columns
        ]
        if inputs:
            fields[column] = column_lineage_dataset.Fields(
                inputFields=inputs, transformationDescription=_SAME_NAME
            )
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)


def _timing(result: Any) -> tuple[datetime | None, datetime | None]:
    spans = [t for t in getattr(result, "timing", None) or [] if t.started_at and t.completed_at]
    if not spans:
        return None, None
    started = min(t.started_at for t in spans)
    ended = max(t.completed_at for t in spans)
    return _utc(started), _utc(ended)


def _utc(moment: datetime) -> datetime:
    """dbt's timings are naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _version(settings: Settings, layer: str, table: str) -> int | None:
    found = delta.open_table(settings.table_uri(layer, table), settings.lake_storage_options)
    return None if found is None else int(found.version())
