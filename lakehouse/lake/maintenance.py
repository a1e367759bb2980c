"""Maintenance of the lake's Delta tables, decided per table from its metrics.

A stream of small commits leaves a table with many small files, a long log to replay on
every read and, in storage, the files of every older version. For each table
:func:`maintain_table` measures it (:class:`TableState`: files, small files, live and
stored bytes, versions since the last checkpoint) and runs, in order, the steps of its
layer that are due:

- ``compact``: delta-rs ``optimize.compact`` rewrites the small files into files of about
  ``maintenance_target_file_mb``, once there are ``maintenance_min_small_files`` of them;
- ``vacuum``: deletes the files that the table stopped using more than
  ``maintenance_retention_hours`` ago, when there are any;
- ``checkpoint``: ``create_checkpoint``, then ``cleanup_metadata`` (log entries older
  than the table's ``delta.logRetentionDuration``, which it sets to the retention), once
  ``maintenance_checkpoint_versions`` versions were committed since the last checkpoint,
  or as many log entries before it are older than the retention.

The retention is the only guard of readers: a query (DuckDB, Trino, Spark, a time travel)
reading a version keeps working as long as that version was current less than the
retention ago. A reader running longer than the retention is the operator's to avoid (a
longer retention); a retention below ``maintenance_min_retention_hours`` is refused.

The steps of a layer are data (``STEPS``); silver's first step folds the changes waiting
in each table's tail into it (``fold``, ``docs/silver-layout.md``), and the tails
themselves are compacted, vacuumed and checkpointed like the layers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from pyarrow import fs

from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.exceptions import ConfigError, LakeError
from lakehouse.lake import delta, silver
from lakehouse.lake.catalog import LAYERS, lake_filesystem, lake_tables
from lakehouse.lake.quality_tables import LAYER, MAINTENANCE, MAINTENANCE_SCHEMA
from lakehouse.progress import Progress
from lakehouse.settings import Settings

_MB = 1024 * 1024
_LOG = "_delta_log"
_LOG_RETENTION = "delta.logRetentionDuration"


@dataclass(frozen=True)
class Policy:
    """The thresholds and the retention of one maintenance run."""

    retention_hours: int
    target_file_bytes: int
    small_file_bytes: int
    min_small_files: int
    checkpoint_versions: int

    @classmethod
    def from_settings(cls, settings: Settings, *, retention_hours: int | None = None) -> Policy:
        """The settings' policy (``retention_hours`` instead of the setting); a retention
        below ``maintenance_min_retention_hours`` is a one-line error."""
        retention = (
            settings.maintenance_retention_hours if retention_hours is None else retention_hours
        )
        minimum = settings.maintenance_min_retention_hours
        if retention < minimum:
            raise ConfigError(
                f"a retention of {retention} h is below the minimum of {minimum} h "
                "(maintenance_min_retention_hours): vacuum would delete files that running "
                "readers and time travel still need; use a longer retention"
            )
        return cls(
            retention_hours=retention,
            target_file_bytes=settings.maintenance_target_file_mb * _MB,
            small_file_bytes=int(settings.maintenance_small_file_mb * _MB),
            min_small_files=settings.maintenance_min_small_files,
            checkpoint_versions=settings.maintenance_checkpoint_versions,
        )


@dataclass(frozen=True)
class Target:
    """One Delta table of the lake: where it is, for delta-rs and for listing its files."""

    layer: str
    name: str
    uri: str
    storage_options: Mapping[str, str]
    filesystem: fs.FileSystem
    path: str  # the table's directory within ``filesystem``

    def open(self) -> DeltaTable:
        table = delta.open_table(self.uri, dict(self.storage_options))
        if table is None:
            raise LakeError(f"{self.uri} is no longer a Delta table")
        return table


@dataclass(frozen=True)
class TableState:
    """What the decisions read: the current version's files and what storage holds."""

    version: int
    files: int  # data files of the current version
    small_files: int
    live_bytes: int  # bytes of the current version's data files
    data_disk_bytes: int  # bytes of every data file in storage, old versions' included
    log_bytes: int
    last_checkpoint: int | None
    # commits before the last checkpoint, older than the retention: cleanup_metadata's
    expired_log_entries: int = 0

    @property
    def disk_bytes(self) -> int:
        return self.data_disk_bytes + self.log_bytes

    @property
    def versions_since_checkpoint(self) -> int:
        return self.version - (-1 if self.last_checkpoint is None else self.last_checkpoint)


def measure(target: Target, policy: Policy, table: DeltaTable | None = None) -> TableState:
    table = table or target.open()
    sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist()
    last_checkpoint = _last_checkpoint(target)
    cutoff = datetime.now(UTC).timestamp() - policy.retention_hours * 3600
    data_disk = log = expired = 0
    for info in target.filesystem.get_file_info(fs.FileSelector(target.path, recursive=True)):
        if info.type != fs.FileType.File:
            continue
        relative = info.path[len(target.path) :].lstrip("/")
        if relative.startswith(_LOG + "/"):
            log += info.size or 0
            commit = relative[len(_LOG) + 1 :].removesuffix(".json")
            if (
                commit.isdigit()
                and last_checkpoint is not None
                and int(commit) < last_checkpoint
                and info.mtime is not None
                and info.mtime.timestamp() < cutoff
            ):
                expired += 1
        elif relative.endswith(".parquet"):
            data_disk += info.size or 0
    return TableState(
        version=table.version(),
        files=len(sizes),
        small_files=sum(1 for size in sizes if size < policy.small_file_bytes),
        live_bytes=sum(sizes),
        data_disk_bytes=data_disk,
        log_bytes=log,
        last_checkpoint=last_checkpoint,
        expired_log_entries=expired,
    )


def _last_checkpoint(target: Target) -> int | None:
    try:
        with target.filesystem.open_input_stream(f"{target.path}/{_LOG}/_last_checkpoint") as f:
            return int(json.loads(f.read())["version"])
    except (FileNotFoundError, KeyError, ValueError):
        return None
    except OSError as exc:  # pyarrow's S3 reports a missing key as an OSError
        if "not found" in str(exc).lower() or "no such" in str(exc).lower():
            return None
        raise


# -- the steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One maintenance action: ``due`` says why it should run now (None: not due), ``run``
    does it."""

    action: str
    due: Callable[[Target, TableState, Policy], str | None]
    run: Callable[[Target, Policy], None]


def _commit_properties() -> CommitProperties:
    return CommitProperties(custom_metadata={delta.WRITER_KEY: "lakehouse maintain"})


def _compact_due(target: Target, state: TableState, policy: Policy) -> str | None:
    if state.small_files < policy.min_small_files:
        return None
    return (
        f"{state.small_files:,} of {state.files:,} files under {policy.small_file_bytes / _MB:g} MB"
    )


def _compact(target: Target, policy: Policy) -> None:
    # planned on a fresh snapshot each time: a lander that committed first wins, and the
    # compaction is planned again on what it wrote
    delta.commit_once(
        lambda: target.open().optimize.compact(
            target_size=policy.target_file_bytes,
            writer_properties=delta.writer_properties(),  # as the applies write: Snappy
            commit_properties=_commit_properties(),
        ),
        f"compacting {target.uri}",
    )


def _checkpoint_due(target: Target, state: TableState, policy: Policy) -> str | None:
    if state.versions_since_checkpoint >= policy.checkpoint_versions:
        return f"{state.versions_since_checkpoint:,} versions since the last checkpoint"
    if state.expired_log_entries >= policy.checkpoint_versions:
        # delta-rs checkpoints every 100 commits itself, but never cleans the log
        return (
            f"{state.expired_log_entries:,} log entries before the last checkpoint, older "
            f"than {policy.retention_hours} h"
        )
    return None


def _checkpoint(target: Target, policy: Policy) -> None:
    table = target.open()
    # the log is kept as long as the files: a version within the retention can be read
    # (delta-rs keeps the checkpoint that versions after the cutoff start from), and a
    # table committed to every second does not keep 30 days (Delta's default) of entries
    retention = f"interval {policy.retention_hours} hours"
    if table.metadata().configuration.get(_LOG_RETENTION) != retention:
        delta.commit_once(
            lambda: target.open().alter.set_table_properties(
                {_LOG_RETENTION: retention}, commit_properties=_commit_properties()
            ),
            f"setting the log retention of {target.uri}",
        )
        table = target.open()
    table.create_checkpoint()
    table.cleanup_metadata()  # log entries older than the retention, before the checkpoint


def _vacuum_due(target: Target, state: TableState, policy: Policy) -> str | None:
    listed = target.open().vacuum(
        retention_hours=policy.retention_hours, dry_run=True, enforce_retention_duration=False
    )
    # the log keeps a removed file's tombstone after a vacuum deleted the file itself
    prefix = target.uri.rstrip("/") + "/"  # in case a store lists them as whole URIs
    found = target.filesystem.get_file_info(
        [f"{target.path}/{name.removeprefix(prefix)}" for name in listed]
    )
    stale = [info for info in found if info.type == fs.FileType.File]
    if not stale:
        return None
    size = sum(info.size or 0 for info in stale) / _MB
    return f"{len(stale):,} files ({size:,.1f} MB) unused for more than {policy.retention_hours} h"


def _vacuum(target: Target, policy: Policy) -> None:
    # the table's own delta.deletedFileRetentionDuration is not enforced: our retention,
    # checked against its minimum, is (Policy.from_settings)
    target.open().vacuum(
        retention_hours=policy.retention_hours,
        dry_run=False,
        enforce_retention_duration=False,
        commit_properties=_commit_properties(),
    )


def fold_step(contracts: Mapping[str, Contract]) -> Step:
    """Silver's first step: fold the changes waiting in the table's tail into it
    (``docs/silver-layout.md``), so that what follows compacts and checkpoints the table
    readers see whole."""

    def due(target: Target, state: TableState, policy: Policy) -> str | None:
        if target.name not in contracts:
            return None
        rows = silver.tail_rows(target.uri, dict(target.storage_options))
        return f"{rows:,} changes waiting in its tail" if rows else None

    def run(target: Target, policy: Policy) -> None:
        silver.fold(contracts[target.name], target.uri, dict(target.storage_options))

    return Step("fold", due, run)


COMPACT = Step("compact", _compact_due, _compact)
CHECKPOINT = Step("checkpoint", _checkpoint_due, _checkpoint)
VACUUM = Step("vacuum", _vacuum_due, _vacuum)
# the checkpoint last: a reader then replays no commit after it (vacuum commits two)
DEFAULT_STEPS: tuple[Step, ...] = (COMPACT, VACUUM, CHECKPOINT)
# what maintenance keeps: the lake's layers and the silver tails beside silver (the tails
# are no layer of the catalog: no reader but silver.read_current knows them)
MAINTAINED = (*LAYERS, f"silver{silver.TAIL_SUFFIX}")
# the steps of each layer, in order (silver's fold first: default_steps)
STEPS: dict[str, tuple[Step, ...]] = {layer: DEFAULT_STEPS for layer in MAINTAINED}


def default_steps(settings: Settings) -> dict[str, tuple[Step, ...]]:
    """``STEPS``, with silver's tails folded first."""
    contracts = {c.lake_name: c for c in load_source_contracts(settings, allow_empty=True).values()}
    return {**STEPS, "silver": (fold_step(contracts), *DEFAULT_STEPS)}


# -- running and recording -------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What one step did to one table (or log), as a row of ``quality.table_maintenance``."""

    run_id: str
    started_at: datetime
    layer: str
    table_name: str
    action: str
    reason: str
    files_before: int
    files_after: int
    live_bytes_before: int
    live_bytes_after: int
    disk_bytes_before: int
    disk_bytes_after: int
    version_before: int
    version_after: int
    seconds: float


def _record(
    run_id: str,
    target: Target,
    action: str,
    reason: str,
    before: TableState,
    after: TableState,
    started: datetime,
    seconds: float = 0.0,
) -> Record:
    return Record(
        run_id=run_id,
        started_at=started,
        layer=target.layer,
        table_name=target.name,
        action=action,
        reason=reason,
        files_before=before.files,
        files_after=after.files,
        live_bytes_before=before.live_bytes,
        live_bytes_after=after.live_bytes,
        disk_bytes_before=before.disk_bytes,
        disk_bytes_after=after.disk_bytes,
        version_before=before.version,
        version_after=after.version,
        seconds=seconds,
    )


def maintain_table(
    target: Target,
    policy: Policy,
    run_id: str,
    *,
    steps: Sequence[Step] = DEFAULT_STEPS,
    dry_run: bool = False,
) -> list[Record]:
    """Run the due ``steps`` on one table, each decided on the table as the step before
    left it; a dry run decides them all on the table as it is and runs none. One record
    per step run (or decided), or one ``none`` record when nothing was due."""
    state = measure(target, policy)
    records = []
    for step in steps:
        reason = step.due(target, state, policy)
        if reason is None:
            continue
        began = time.perf_counter()
        started = datetime.now(UTC)
        after = state
        if not dry_run:
            step.run(target, policy)
            after = measure(target, policy)
        seconds = time.perf_counter() - began
        records.append(_record(run_id, target, step.action, reason, state, after, started, seconds))
        state = after
    if not records:
        reason = (
            f"nothing due: {state.files:,} files ({state.small_files:,} small), "
            f"{state.versions_since_checkpoint:,} versions since the last checkpoint"
        )
        records.append(_record(run_id, target, "none", reason, state, state, datetime.now(UTC)))
    return records


def targets(settings: Settings) -> list[Target]:
    """Every Delta table of the lake, bronze first."""
    filesystem, root = lake_filesystem(settings)
    return [
        Target(
            layer,
            name,
            settings.table_uri(layer, name),
            settings.lake_storage_options,
            filesystem,
            f"{root}/{layer}/{name}",
        )
        for layer, name in lake_tables(settings, MAINTAINED)
    ]


def maintain_lake(
    settings: Settings,
    policy: Policy,
    run_id: str,
    *,
    dry_run: bool = False,
    steps: Mapping[str, Sequence[Step]] | None = None,
    progress: Progress | None = None,
) -> list[Record]:
    """Maintain every table of the lake with its layer's steps."""
    steps = default_steps(settings) if steps is None else steps
    found = targets(settings)
    task = progress.add_task("maintaining tables", total=len(found)) if progress else None
    records: list[Record] = []
    for target in found:
        records.extend(
            maintain_table(
                target,
                policy,
                run_id,
                steps=steps.get(target.layer, DEFAULT_STEPS),
                dry_run=dry_run,
            )
        )
        if progress is not None and task is not None:
            progress.advance(task)
    return records


def record(settings: Settings, records: Sequence[Record]) -> None:
    """Append ``records`` to the lake's ``quality.table_maintenance``."""
    if not records:
        return
    write_deltalake(
        settings.table_uri(LAYER, MAINTENANCE),
        pa.Table.from_pylist([asdict(r) for r in records], schema=MAINTENANCE_SCHEMA),
        mode="append",
        storage_options=settings.lake_storage_options or None,
    )
