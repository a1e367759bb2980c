"""Thin helpers over delta-rs shared by the bronze, silver and dead-letter tables.

Every write commits against the snapshot its batch was planned on (the ``DeltaTable``
object read to plan it, never a fresh load of the URI): when another writer committed
in between with the same app transaction, delta-rs fails ours with ``CommitFailedError``
("concurrent transaction") instead of stacking it on top, and :func:`commit_once` plans
again on the new snapshot, where the other writer's commit makes a replay a no-op.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lakehouse.exceptions import LakeBusy, LakeError

T = TypeVar("T")
COMMIT_ATTEMPTS = 8
WRITER_KEY = "lakehouse.writer"


def open_table(uri: str, storage_options: dict[str, str]) -> DeltaTable | None:
    """The Delta table at ``uri``, or None when there is none yet. A table whose log
    cannot be read (a damaged ``_delta_log``, an unreachable store) is a ``LakeError``
    naming it, not a stack trace from delta-rs."""
    try:
        return DeltaTable(uri, storage_options=storage_options or None)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise LakeError(
            f"cannot read the Delta table {uri} ({_first_line(exc)}): restore its _delta_log "
            "from a backup, or remove the table and run `lakehouse ingest` to rebuild it "
            "(silver from bronze, bronze from the change events)"
        ) from None


def check_tables(uris: list[str], storage_options: dict[str, str]) -> None:
    """Open every table of ``uris`` that exists: a damaged one fails here, in one line,
    before a long run reaches it."""
    for uri in uris:
        open_table(uri, storage_options)


def _first_line(exc: Exception) -> str:
    """delta-rs appends a Rust backtrace to its message when RUST_BACKTRACE is set."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].removeprefix("Kernel error: ") if lines else type(exc).__name__


def committed_version(table: DeltaTable | None, app_id: str) -> int:
    """Last source position committed to ``table`` by ``app_id`` (-1 when none)."""
    if table is None:
        return -1
    version = table.transaction_version(app_id)
    return -1 if version is None else version


def ensure_table(uri: str, schema: pa.Schema, storage_options: dict[str, str]) -> DeltaTable:
    """The table at ``uri``, created empty with ``schema`` when there is none (two writers
    that create it at once: one creates it, the other opens it)."""
    table = open_table(uri, storage_options)
    if table is not None:
        return table
    try:
        return DeltaTable.create(
            uri, schema=schema, mode="ignore", storage_options=storage_options or None
        )
    except DeltaError:
        table = open_table(uri, storage_options)
        if table is None:
            raise
        return table


def commit_once(attempt: Callable[[], T], what: str, attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run ``attempt`` (plan on a fresh snapshot, commit against it) until no concurrent
    writer committed first."""
    for n in range(attempts):
        try:
            return attempt()
        except CommitFailedError:
            time.sleep(random.uniform(0, 0.05 * 2**n))  # jitter: no second collision
    raise LakeBusy(
        f"{what}: another writer committed first {attempts} times in a row; "
        "run one lander or build per lake, then run it again"
    )


def append(
    table: DeltaTable | str,
    rows: pa.Table,
    *,
    app_id: str,
    version: int,
    storage_options: dict[str, str],
) -> None:
    """Append ``rows`` and record ``(app_id, version)`` in the same Delta commit, so the
    data and the consumed position land together or not at all. ``table`` is the
    snapshot the rows were planned on: a concurrent commit fails this one."""
    write_deltalake(
        table,
        rows,
        mode="append",
        schema_mode="merge",  # columns added in the source are added to the table
        storage_options=storage_options or None,
        commit_properties=commit_properties(app_id, version),
    )


def commit_properties(app_id: str, version: int) -> CommitProperties:
    """The app transaction, and who committed (``lakehouse.writer``: host and pid in the
    table's history, to tell which lander wrote what)."""
    return CommitProperties(
        app_transactions=[Transaction(app_id=app_id, version=version)],
        custom_metadata={WRITER_KEY: writer()},
    )


def writer_properties() -> WriterProperties:
    """Parquet as the appends write it (Snappy): delta-rs' MERGE, DELETE and OPTIMIZE
    default to ZSTD, whose files read about 1.5 times slower here."""
    return WriterProperties(compression="SNAPPY")


def writer() -> str:
    """Who commits: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def file_stats(table: DeltaTable | None) -> pa.Table | None:
    """The table's add actions with their column statistics (``num_records``,
    ``min.<column>``, ``max.<column>``): answers counts and bounds without reading data."""
    if table is None:
        return None
    return pa.table(table.get_add_actions(flatten=True))


def stats_sum(stats: pa.Table | None, column: str) -> int:
    if stats is None or stats.num_rows == 0:
        return 0
    return int(pc.sum(stats.column(column)).as_py() or 0)


def stats_max(stats: pa.Table | None, column: str) -> object:
    if stats is None or stats.num_rows == 0 or column not in stats.column_names:
        return None
    return pc.max(stats.column(column)).as_py()
