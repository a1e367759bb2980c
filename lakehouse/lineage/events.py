"""Emitting OpenLineage run events: the transports, the names of jobs and datasets, the
project's own facets, and the parent run (the Prefect flow run) events are linked to."""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    BaseFacet,
    DatasetFacet,
    InputDatasetFacet,
    JobFacet,
    OutputDatasetFacet,
    RunFacet,
    error_message_run,
    job_type_job,
)
from openlineage.client.facet_v2 import (
    parent_run as parent_facet,
)
from openlineage.client.transport.composite import CompositeConfig, CompositeTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.transport import Transport

from lakehouse.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "urn:lakehouse:lineage"
FACET_SCHEMA = "urn:lakehouse:lineage:facets"  # described in docs/lineage.md
# run ids made from a name (the gate's run id) are uuid5 in this namespace: every stage
# that knows the name finds the same run
_RUN_NAMESPACE = uuid.UUID("5b0d2c8e-6f1e-4c55-9a37-0f4a4f0c2d11")
# an endpoint that is down costs a few seconds at most, never the pipeline
_HTTP_RETRY = {"total": 2, "read": 2, "connect": 2, "backoff_factor": 0.2}

# job names
LANDER_JOB = "lander"
BUILD_JOB = "build"


def landed_table_job(table: str) -> str:
    return f"lander.{table}"


def dbt_job(model: str) -> str:
    return f"dbt.{model}"


def flow_job(flow: str) -> str:
    return f"flows.{flow}"


def run_id_for(name: str) -> str:
    """The OpenLineage run id (a UUID) of a run the pipeline names otherwise."""
    return str(uuid.uuid5(_RUN_NAMESPACE, name))


def new_run_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


# --- datasets ---------------------------------------------------------------------------


def lake_dataset(settings: Settings, layer: str, table: str) -> tuple[str, str]:
    """A lake table as OpenLineage names it: ``file`` and its path, or ``s3://<bucket>``
    and the key of its folder."""
    return _location(settings.table_uri(layer, table))


def _location(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return "file", parsed.path if parsed.scheme else uri
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")


def source_dataset(settings: Settings, topic: str) -> tuple[str, str]:
    """A source table as the lander reads it: its Kafka topic, or its folder of recorded
    change files."""
    if settings.kafka_bootstrap_servers:
        return f"kafka://{settings.kafka_bootstrap_servers.split(',')[0]}", topic
    return "file", str(settings.changes_path / topic)


def warehouse_namespace(settings: Settings, *, published: bool = False) -> str:
    """Where the marts live: the DuckDB file dbt builds or readers read, or Trino."""
    if settings.profile == "local":
        return f"duckdb://{settings.published_warehouse if published else settings.warehouse}"
    return f"trino://{settings.trino_host}:{settings.trino_port}"


# --- the project's facets (docs/lineage.md) ----------------------------------------------


@attr.define
class SourcePositionsInputFacet(InputDatasetFacet):
    """The part of a source table's change stream one lander run landed: offsets of the
    topic, and the source positions (``_commit_pos``, ``_event_pos``: LSNs on PostgreSQL)
    of the events it wrote to bronze, as decimal strings."""

    topic: str
    table: str
    firstOffset: int
    lastOffset: int
    events: int
    landed: int
    commitPosMin: str | None = None
    commitPosMax: str | None = None
    eventPosMin: str | None = None
    eventPosMax: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:SourcePositionsInputFacet"


@attr.define
class DeltaVersionDatasetFacet(DatasetFacet):
    """A Delta table's version: the one a writer committed, or the one a reader read
    (``versionAtStart`` = ``versionAtEnd`` when no writer committed while it read)."""

    version: int | None
    versionAtStart: int | None = None
    versionAtEnd: int | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:DeltaVersionDatasetFacet"


@attr.define
class PublicationRunFacet(RunFacet):
    """What the gate served: its run id (the publication id), the run whose data the
    data marts hold, its outcome, and each served mart with the run that built it."""

    runId: str
    dataRunId: str | None
    outcome: str
    marts: dict[str, dict[str, object]]

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:PublicationRunFacet"


@attr.define
class LakehouseRunFacet(RunFacet):
    """The pipeline's own name of a run (the gate's run id, the flow run's name)."""

    name: str
    details: dict[str, object] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMA}:LakehouseRunFacet"


# --- the parent run ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    namespace: str
    job: str
    run_id: str

    def facet(self) -> parent_facet.ParentRunFacet:
        return parent_facet.ParentRunFacet(
            run=parent_facet.Run(runId=self.run_id),
            job=parent_facet.Job(namespace=self.namespace, name=self.job),
        )


_PARENT: contextvars.ContextVar[RunRef | None] = contextvars.ContextVar(
    "lakehouse_lineage_parent", default=None
)


def current_parent() -> RunRef | None:
    return _PARENT.get()


@contextmanager
def parent_run(
    settings: Settings, job: str, run_id: str, *, name: str | None = None
) -> Iterator[RunRef]:
    """A run (a Prefect flow run) that the events emitted inside the block name as their
    parent: START now, COMPLETE at the end, FAIL with the error when the block raises."""
    ref = RunRef(settings.lineage_namespace, job, run_id)
    facets: dict[str, RunFacet] = {"lakehouse": LakehouseRunFacet(name or job)}
    emit(settings, RunState.START, ref, run_facets=facets, job_type="FLOW")
    token = _PARENT.set(ref)
    try:
        yield ref
    except BaseException as exc:
        _PARENT.reset(token)
        failed = {**facets, **error_facets(exc)}
        emit(settings, RunState.FAIL, ref, run_facets=failed, job_type="FLOW")
        raise
    _PARENT.reset(token)
    emit(settings, RunState.COMPLETE, ref, run_facets=facets, job_type="FLOW")


def error_facets(exc: BaseException) -> dict[str, RunFacet]:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return {"errorMessage": error_message_run.ErrorMessageRunFacet(message, "PYTHON")}


# --- emitting ----------------------------------------------------------------------------

_clients: dict[tuple[str, str | None], OpenLineageClient] = {}
_clients_lock = threading.Lock()


def client(settings: Settings) -> OpenLineageClient:
    """The client of these settings: the file transport, and the HTTP one when set."""
    key = (str(settings.lineage_log), settings.lineage_url)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = OpenLineageClient(transport=_transport(settings))
        return _clients[key]


def _transport(settings: Settings) -> Transport:
    """The file transport, and the HTTP one beside it when ``lineage_url`` is set (the
    client's composite transport, configured as an ``openlineage.yml`` would)."""
    settings.lineage_log.parent.mkdir(parents=True, exist_ok=True)
    file = {"type": "file", "log_file_path": str(settings.lineage_log), "append": True}
    if not settings.lineage_url:
        return FileTransport(FileConfig.from_dict(file))
    http = {"type": "http", "url": settings.lineage_url, "timeout": 5.0, "retry": _HTTP_RETRY}
    return CompositeTransport(
        CompositeConfig.from_dict({"transports": [file, http], "continue_on_failure": True})
    )


Datasets = Sequence[tuple[str, str, Mapping[str, BaseFacet]]]


def emit(
    settings: Settings,
    state: RunState,
    ref: RunRef,
    *,
    inputs: Datasets = (),
    outputs: Datasets = (),
    run_facets: Mapping[str, RunFacet] | None = None,
    job_type: str = "JOB",
    integration: str = "LAKEHOUSE",
    at: datetime | None = None,
    parent: RunRef | None = None,
) -> None:
    """One run event. ``inputs``/``outputs``: (namespace, name, facets); a facet whose
    class is an input (output) dataset facet goes to ``inputFacets`` (``outputFacets``)."""
    facets: dict[str, RunFacet] = dict(run_facets or {})
    above = parent or current_parent()
    if above is not None and above != ref:
        facets["parent"] = above.facet()
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=integration, jobType=job_type
        )
    }
    event = RunEvent(
        eventType=state,
        eventTime=(at or now()).isoformat(),
        run=Run(runId=ref.run_id, facets=facets),
        job=Job(namespace=ref.namespace, name=ref.job, facets=job_facets),
        inputs=[_input(*d) for d in inputs],
        outputs=[_output(*d) for d in outputs],
        producer=PRODUCER,
    )
    try:
        client(settings).emit(event)
    except Exception as exc:  # a lineage transport never stops the pipeline
        log.warning("lineage event of %s not sent: %s", ref.job, " ".join(str(exc).split()))


def _input(namespace: str, name: str, facets: Mapping[str, BaseFacet]) -> InputDataset:
    return InputDataset(
        namespace,
        name,
        facets={k: f for k, f in facets.items() if isinstance(f, DatasetFacet)},
        inputFacets={k: f for k, f in facets.items() if isinstance(f, InputDatasetFacet)},
    )


def _output(namespace: str, name: str, facets: Mapping[str, BaseFacet]) -> OutputDataset:
    return OutputDataset(
        namespace,
        name,
        facets={k: f for k, f in facets.items() if isinstance(f, DatasetFacet)},
        outputFacets={k: f for k, f in facets.items() if isinstance(f, OutputDatasetFacet)},
    )
