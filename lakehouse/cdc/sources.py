"""Sources beside CDC: files dropped in a folder or a bucket, and REST APIs.

dlt extracts them and keeps their cursors: ``dlt.sources.filesystem`` lists the files
(CSV, Excel, Parquet) with an incremental cursor on their modification time, and
``dlt.sources.rest_api`` pages through an endpoint, passing the last cursor value seen
as a query parameter (``updated_since=...``). Each batch dlt loads goes to a
``dlt.destination`` that lands it the way the lander lands change events: the rows are
checked against the table's contract (``lakehouse.cdc.tabular``), rejects go to the
dead-letter table with their reason, PII is masked, and the rest is appended to bronze
with an exactly-once position (a Delta app transaction, ``app_id="source.<name>"``);
then silver applies bronze as it does for CDC tables.

Positions order the changes so that silver's "newer wins" holds and a re-run lands
nothing twice: a file's rows sort at its modification time, then by file and row number;
an API row sorts at its cursor value. Bronze drops a row whose identity (key, position)
it holds already, so a re-run over the same files or pages (dlt's state lost, a load
retried) adds nothing. dlt moves its cursor in its pipeline state under
``<data_dir>/dlt/``; a load that failed stays pending there and is loaded before the
next extraction, so the cursor never passes rows that did not land.

The sources are declared in a YAML file (``sources_file``, see docs/sources.md).
"""

from __future__ import annotations

import csv
import io
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import yaml

from lakehouse.cdc import tabular
from lakehouse.cdc.decode import bronze_schema
from lakehouse.cdc.pii import Masker, checked_key
from lakehouse.contracts import NAME, Contract, load_contract, load_source_contracts
from lakehouse.exceptions import ContractError, SourceError
from lakehouse.lake import bronze, dead_letter, delta, silver
from lakehouse.lake.catalog import register_tables
from lakehouse.lease import hold
from lakehouse.progress import Progress
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from dlt.common.storages.fsspec_filesystem import FileItemDict
    from dlt.extract.resource import DltResource

DEAD_LETTER = ("dead_letter", "events")
# A source's name in bronze's app transactions and the dead letters: ``source.<name>``.
SOURCE_TOPIC_PREFIX = "source."
Kind = Literal["files", "rest"]
FILE_TYPES = (".csv", ".xlsx", ".parquet")
# A file's row sorts at its modification time (``_commit_pos``, microseconds), then at
# ``_event_pos`` = mtime in seconds * 10^9 + a number from the file's name * 10^7 + its
# row number: unique per row and file, and under 2^63, where delta-rs keeps exact file
# statistics (bronze prunes its de-duplication read on them). Files of up to ten
# million rows.
_FILE_DIGITS = 100
_ROW_DIGITS = 10**7
_SOURCE_KEYS = {
    "files": ("kind", "contract", "description", "bucket_url", "file_glob"),
    "rest": (
        "kind",
        "contract",
        "description",
        "base_url",
        "path",
        "data_selector",
        "paginator",
        "params",
        "cursor",
    ),
}
_CURSOR_KEYS = ("param", "field", "initial_value")
REQUEST_ATTEMPTS = 3
# dlt's wrapping of an extraction error, before the error itself
_DLT_PREFIX = re.compile(r"^In processing pipe .*? caused an exception: ")


@dataclass(frozen=True)
class SourceSpec:
    """One declared source: its table's contract and where dlt reads it."""

    name: str
    kind: Kind
    contract: Contract
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        """Its name in bronze's app transactions and the dead letters."""
        return f"{SOURCE_TOPIC_PREFIX}{self.name}"


@dataclass
class SourceReport:
    name: str
    table: str
    rows: int = 0
    landed: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    applied: silver.ApplyResult | None = None
    seconds: float = 0.0


def load_sources(settings: Settings) -> list[SourceSpec]:
    """The sources of ``settings.sources_file``, none when the file does not exist."""
    path = settings.sources_file
    if not path.is_file():
        return []
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ContractError(f"{path} is not valid YAML ({' '.join(str(exc).split())})") from None
    declared = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(declared, dict):
        raise ContractError(f"{path}: write the sources as a mapping under 'sources:'")
    cdc_tables = set(load_source_contracts(settings, allow_empty=True))
    specs: list[SourceSpec] = []
    for name, options in declared.items():
        specs.append(_spec(settings, path, str(name), options, cdc_tables))
    tables = [s.contract.lake_name for s in specs]
    twice = sorted({t for t in tables if tables.count(t) > 1})
    if twice:
        raise ContractError(f"{path}: two sources land into the lake table(s) {twice}")
    return specs


def _spec(
    settings: Settings, path: Path, name: str, options: Any, cdc_tables: set[str]
) -> SourceSpec:
    where = f"{path}: source {name!r}"
    if not NAME.match(name):
        raise ContractError(f"{where}: use lowercase letters, digits and underscores")
    if not isinstance(options, dict) or options.get("kind") not in _SOURCE_KEYS:
        raise ContractError(f"{where}: needs 'kind: files' or 'kind: rest'")
    kind: Kind = options["kind"]
    unknown = sorted(set(options) - set(_SOURCE_KEYS[kind]))
    if unknown:
        raise ContractError(
            f"{where}: unknown key(s) {unknown}; the keys are {', '.join(_SOURCE_KEYS[kind])}"
        )
    if "contract" not in options:
        raise ContractError(f"{where}: name its table's contract ('contract: <file>.yml')")
    contract = load_contract((path.parent / str(options["contract"])).resolve())
    if contract.lake_name in cdc_tables:
        raise ContractError(
            f"{where}: its table {contract.lake_name!r} is a CDC table too; rename it"
        )
    options = {k: _expand(settings, v) for k, v in options.items()}
    if kind == "files" and "bucket_url" not in options:
        raise ContractError(f"{where}: needs 'bucket_url' (a folder, or s3://bucket/prefix)")
    if kind == "rest":
        for key in ("base_url", "path"):
            if key not in options:
                raise ContractError(f"{where}: needs {key!r}")
        cursor = options.get("cursor")
        if not isinstance(cursor, dict) or set(cursor) - set(_CURSOR_KEYS) or "field" not in cursor:
            raise ContractError(
                f"{where}: needs 'cursor: {{field: <a timestamp field of the rows>, "
                "param: <the query parameter that takes it>, initial_value: <ISO time>}}'"
            )
    return SourceSpec(name, kind, contract, options)


def _expand(settings: Settings, value: Any) -> Any:
    """``{data_dir}`` in a string value is the data directory."""
    if isinstance(value, str):
        return value.replace("{data_dir}", str(settings.root))
    return value


def run_sources(
    settings: Settings,
    *,
    names: list[str] | None = None,
    apply: bool = True,
    progress: Progress | None = None,
) -> list[SourceReport]:
    """Extract every declared source (or those of ``names``) with dlt, land what is new
    and apply it to silver. Holds the lander lease: one writer of bronze at a time."""
    specs = load_sources(settings)
    if names:
        missing = sorted(set(names) - {s.name for s in specs})
        if missing:
            known = ", ".join(s.name for s in specs) or "none"
            raise SourceError(f"no source {missing} in {settings.sources_file} (declared: {known})")
        specs = [s for s in specs if s.name in names]
    if not specs:
        return []
    with hold(settings, "lander"):
        masker = Masker(checked_key(settings))
        task = progress.add_task("landing sources", total=len(specs)) if progress else None
        reports = []
        for spec in specs:
            reports.append(_run(settings, spec, masker, apply))
            if progress is not None and task is not None:
                progress.advance(task)
        if settings.profile == "stack":  # Trino queries what was landed, new tables too
            register_tables(settings)
        return reports


def ensure_source_tables(settings: Settings) -> None:
    """The bronze and silver tables of every declared source (the lander makes them with
    the CDC tables', before dbt reads them)."""
    for spec in load_sources(settings):
        ensure_tables(settings, spec.contract)


def ensure_tables(settings: Settings, contract: Contract) -> None:
    """The empty bronze and silver tables of a contract (a CDC table's or a file or REST
    source's), so that dbt's sources resolve before its first change arrives."""
    bronze_table = bronze_schema(contract).append(bronze.INGESTED_AT)
    options = settings.lake_storage_options
    delta.ensure_table(settings.table_uri("bronze", contract.lake_name), bronze_table, options)
    delta.ensure_table(
        settings.table_uri("silver", contract.lake_name),
        silver.silver_schema(contract, bronze_table),
        options,
    )


def _run(settings: Settings, spec: SourceSpec, masker: Masker, apply: bool) -> SourceReport:
    import dlt  # seconds to load: only when a source runs
    from dlt.pipeline.exceptions import PipelineStepFailed

    started = time.perf_counter()
    report = SourceReport(spec.name, spec.contract.lake_name)
    ensure_tables(settings, spec.contract)
    dlt.config["runtime.dlthub_telemetry"] = False  # nothing leaves the machine
    destination = dlt.destination(
        _lander(settings, spec, masker, report),
        name=f"lake_{spec.name}",
        loader_file_format="parquet",
        batch_size=settings.ingest_batch_events,
        naming_convention="direct",
        skip_dlt_columns_and_tables=True,
        loader_parallelism_strategy="sequential",  # bronze positions follow the batches
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"source_{spec.name}",
        pipelines_dir=str(settings.root / "dlt"),
        destination=destination,
        dataset_name=spec.name,
    )
    resource = _file_resource(settings, spec) if spec.kind == "files" else _rest_resource(spec)
    try:
        pipeline.run(resource, table_name=spec.name)
    except PipelineStepFailed as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise SourceError(
            f"source {spec.name!r}: {_DLT_PREFIX.sub('', _first_line(cause))}; what landed "
            "stays landed and "
            "the rest is loaded on the next run"
        ) from None
    if apply:
        silver_uri = settings.table_uri("silver", spec.contract.lake_name)
        report.applied = silver.apply(
            spec.contract,
            settings.table_uri("bronze", spec.contract.lake_name),
            silver_uri,
            settings.lake_storage_options,
        )
        # a source's run is a one-off: silver a plain Delta table after it, as after a
        # one-off ingest (docs/silver-layout.md)
        silver.fold(spec.contract, silver_uri, settings.lake_storage_options)
    report.seconds = time.perf_counter() - started
    return report


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _lander(settings: Settings, spec: SourceSpec, masker: Masker, report: SourceReport) -> Any:
    """The function dlt hands each batch: check, dead-letter, mask, append to bronze."""
    contract, topic = spec.contract, spec.topic
    bronze_uri = settings.table_uri("bronze", contract.lake_name)
    dlq_uri = settings.table_uri(*DEAD_LETTER)
    options = settings.lake_storage_options

    def land(items: Any, table: Any) -> None:
        batch = _as_table(items)
        if batch.num_rows == 0:
            return
        start = delta.committed_version(delta.open_table(bronze_uri, options), topic) + 1
        last = start + batch.num_rows - 1
        checked = tabular.check(contract, batch, topic, start, masker)
        rejects = _not_dead_lettered(dlq_uri, topic, checked.rejects, options)
        report.rejected += dead_letter.write(dlq_uri, topic, rejects, last, options)
        landed, duplicates = bronze.append(bronze_uri, contract, topic, checked.rows, last, options)
        report.rows += batch.num_rows
        report.landed += landed
        report.duplicates += duplicates
        report.batches += 1

    return land


def _not_dead_lettered(
    uri: str, topic: str, rejects: pa.Table, options: dict[str, str]
) -> pa.Table:
    """The rejects the dead-letter table does not hold yet: a row read again (dlt's state
    lost, a load retried) has the same masked copy, where it was read included."""
    if rejects.num_rows == 0:
        return rejects
    table = delta.open_table(uri, options)
    if table is None:
        return rejects
    held = table.to_pyarrow_dataset().to_table(
        columns=["topic", "raw"], filter=ds.field("topic") == topic
    )
    return rejects.join(held, keys=["topic", "raw"], join_type="left anti").sort_by("offset")


def _as_table(items: Any) -> pa.Table:
    if isinstance(items, pa.RecordBatch):
        return pa.Table.from_batches([items])
    if isinstance(items, pa.Table):
        return items
    return pa.Table.from_pylist(list(items))


# --- files ----------------------------------------------------------------------------


def _file_resource(settings: Settings, spec: SourceSpec) -> DltResource:
    import dlt
    from dlt.sources.filesystem import filesystem

    bucket_url = str(spec.options["bucket_url"])
    credentials = _bucket_credentials(settings, bucket_url)
    if "://" not in bucket_url:
        Path(bucket_url).mkdir(parents=True, exist_ok=True)  # the drop folder, empty
        bucket_url = Path(bucket_url).resolve().as_uri()
    files = filesystem(
        bucket_url=bucket_url,
        file_glob=str(spec.options.get("file_glob", "*")),
        **({"credentials": credentials} if credentials is not None else {}),
    )
    files.apply_hints(incremental=dlt.sources.incremental("modification_date"))

    @dlt.transformer(name=spec.name)
    def read_files(items: list[FileItemDict]) -> Iterator[pa.Table]:
        for item in items:
            if Path(item["file_name"]).name.startswith(".") or item["file_name"].endswith(
                (".partial", ".tmp")
            ):
                continue  # a file still being written
            yield _read_file(item)

    return files | read_files


def _bucket_credentials(settings: Settings, bucket_url: str) -> Any:
    """A bucket of the lake's object store is read with the lake's credentials."""
    if not bucket_url.startswith(("s3://", "s3a://")):
        return None
    from dlt.sources.credentials import AwsCredentials

    options = {k.upper(): v for k, v in settings.lake_storage_options.items()}
    return AwsCredentials(
        aws_access_key_id=options.get("AWS_ACCESS_KEY_ID", ""),
        aws_secret_access_key=options.get("AWS_SECRET_ACCESS_KEY", ""),
        endpoint_url=options.get("AWS_ENDPOINT_URL"),
        region_name=options.get("AWS_REGION"),
    )


def _read_file(item: FileItemDict) -> pa.Table:
    """A file's rows as text, with their positions; a file that cannot be read is one
    row that says why (a dead letter)."""
    name = str(item["file_name"])
    mtime = item["modification_date"]
    commit_us = _epoch_us(mtime)
    suffix = Path(name).suffix.lower()
    try:
        with item.open() as handle:
            data = handle.read()
        if suffix == ".csv":
            rows = _read_csv(data)
        elif suffix == ".xlsx":
            rows = _read_excel(data)
        elif suffix == ".parquet":
            rows = _read_parquet(data)
        else:
            raise ValueError(f"not a file type sources read ({', '.join(FILE_TYPES)})")
    except Exception as exc:
        return pa.table(
            {
                tabular.COMMIT_POS: pa.array([commit_us], pa.int64()),
                tabular.EVENT_POS: [str(_file_base(commit_us, name))],
                tabular.AT: [name],
                tabular.ERROR: [f"cannot read the file {name}: {_first_line(exc)}"],
            }
        )
    n = rows.num_rows
    row_numbers = pa.array(range(1, n + 1), pa.int64())
    base = _file_base(commit_us, name)
    event = pa.array([str(base + i) for i in range(1, n + 1)], pa.string())  # > 64 bits
    at = pc.binary_join_element_wise(
        pa.array([name] * n, pa.string()), pc.cast(row_numbers, pa.string()), "#"
    )
    return (
        rows.append_column(tabular.COMMIT_POS, pa.array([commit_us] * n, pa.int64()))
        .append_column(tabular.EVENT_POS, event)
        .append_column(tabular.AT, at)
    )


def _file_base(commit_us: int, name: str) -> int:
    seconds = commit_us // 1_000_000
    return (seconds * _FILE_DIGITS + zlib.crc32(name.encode()) % _FILE_DIGITS) * _ROW_DIGITS


def _read_csv(data: bytes) -> pa.Table:
    """Every column as text (a SKU "007" stays "007"): the contract converts."""
    import pyarrow.csv as pcsv

    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig").split("\n", 1)[0])), [])
    return pcsv.read_csv(
        io.BytesIO(data),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True
        ),
    )


def _read_excel(data: bytes) -> pa.Table:
    """The first sheet, its first row the header; dates as ISO dates, whole numbers
    without a decimal point, every value as text."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        columns: list[list[str | None]] = [[] for _ in header]
        for row in rows:
            if all(v is None for v in row):
                continue
            for i in range(len(header)):
                columns[i].append(_cell_text(row[i] if i < len(row) else None))
    finally:
        book.close()
    return pa.table(
        {h: pa.array(c, pa.string()) for h, c in zip(header, columns, strict=True) if h}
    )


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_parquet(data: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return pa.table({name: pc.cast(table.column(name), pa.string()) for name in table.column_names})


# --- REST -----------------------------------------------------------------------------


def _rest_resource(spec: SourceSpec) -> DltResource:
    from dlt.sources.helpers.requests import Client
    from dlt.sources.rest_api import rest_api_resources

    options = spec.options
    cursor = options["cursor"]
    field_name = str(cursor["field"])
    params: dict[str, Any] = dict(options.get("params") or {})
    if cursor.get("param"):
        params[str(cursor["param"])] = {
            "type": "incremental",
            "cursor_path": field_name,
            "initial_value": str(cursor.get("initial_value", "1970-01-01T00:00:00+00:00")),
            "on_cursor_value_missing": "include",  # a dead letter, not a stopped load
        }
    endpoint: dict[str, Any] = {"path": options["path"], "params": params}
    if options.get("data_selector"):
        endpoint["data_selector"] = options["data_selector"]
    if options.get("paginator"):
        endpoint["paginator"] = options["paginator"]
    at = f"{str(options['base_url']).rstrip('/')}/{str(options['path']).lstrip('/')}"

    def as_text(row: dict[str, Any]) -> dict[str, Any]:
        return _rest_row(row, field_name, at)

    # an API that does not answer fails the run in seconds (the next run resumes)
    session = Client(
        request_max_attempts=REQUEST_ATTEMPTS, request_backoff_factor=0.5, raise_for_status=False
    ).session
    config: Any = {  # dlt's RESTAPIConfig
        "client": {"base_url": options["base_url"], "session": session},
        "resources": [
            {"name": spec.name, "endpoint": endpoint, "processing_steps": [{"map": as_text}]}
        ],
    }
    (resource,) = rest_api_resources(config)
    return resource


def _rest_row(row: dict[str, Any], cursor_field: str, at: str) -> dict[str, Any]:
    """An API row as text, at its cursor value's position (None when it has none)."""
    import orjson

    text: dict[str, Any] = {
        str(k): None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in row.items()
    }
    commit_us = _timestamp_us(row.get(cursor_field))
    text[tabular.COMMIT_POS] = commit_us
    text[tabular.EVENT_POS] = None if commit_us is None else str(commit_us)
    text[tabular.AT] = at
    return text


def _timestamp_us(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return _epoch_us(moment)


def _epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float would round them)."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
