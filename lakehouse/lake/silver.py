"""Silver: the current state of each source table, one row per primary key.

The bronze rows not yet applied (``_offset`` above the ``bronze`` app transaction of the
silver table or of its tail) are reduced to the last change per key, in source order.
A change never overwrites a row that a later source position produced, so applying in
any batch split gives the same state.

Silver is merge-on-read (``docs/silver-layout.md``): a table is a *base* Delta table
(``<lake>/silver/<table>``, one row per key) and a *tail* (``<lake>/silver_tail/<table>``,
the reduced changes of each micro-batch appended as they come, deletes kept as rows with
``_op = 'd'``). An apply only appends to the tail, so its cost follows the batch, not
the table. :func:`fold` merges the tail into the base (one MERGE: deletes remove the row,
other changes upsert it over an older one) and then removes the rows it folded.
:func:`read_current` is the one reader of the exact state, base ⊕ tail: for every key in
the tail, the newest of its base row and its tail changes. The builds fold first, so dbt
(DuckDB, Trino) reads a plain base table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable

from lakehouse.contracts import Contract
from lakehouse.lake import delta

log = logging.getLogger(__name__)
APP_ID = "bronze"
# Debezium's stand-in for a value PostgreSQL did not send (`unavailable.value.placeholder`)
UNAVAILABLE = "__debezium_unavailable_value"
SILVER_META = ["_commit_pos", "_event_pos", "_source_ts", "_offset"]
TAIL_SUFFIX = "_tail"  # <lake>/silver_tail/<table>: the changes not folded into silver yet


@dataclass(frozen=True)
class ApplyResult:
    table: str
    changes: int
    upserted: int
    deleted: int
    rows: int
    offset: int = -1  # the last bronze offset this apply applied (-1: none)


# Bronze columns that are the change log's own, not the row's.
BRONZE_ONLY = {"_op", "_tx_id", "_is_snapshot", "_ingested_at"}


def silver_schema(contract: Contract, bronze: pa.Schema) -> pa.Schema:
    """The contract's columns, the columns added in the source since, then the meta."""
    known = set(contract.column_names)
    added = [
        n for n in bronze.names if n not in known and n not in BRONZE_ONLY and n not in SILVER_META
    ]
    return pa.schema([bronze.field(c) for c in [*contract.column_names, *added, *SILVER_META]])


def _change_columns(contract: Contract, bronze: DeltaTable) -> list[str]:
    names = [f.name for f in bronze.schema().fields]
    return [*silver_schema(contract, _names_schema(names)).names, "_op"]


def _names_schema(names: list[str]) -> pa.Schema:
    return pa.schema([pa.field(n, pa.null()) for n in names])


def latest_per_key(changes: pa.Table, primary_key: tuple[str, ...]) -> pa.Table:
    """The last change of every key in source order ``(_commit_pos, _event_pos)``."""
    n = changes.num_rows
    if n == 0:
        return changes
    ordered = changes.sort_by(
        [(k, "ascending") for k in primary_key]
        + [("_commit_pos", "ascending"), ("_event_pos", "ascending")]
    )
    last = np.ones(n, dtype=bool)
    same_as_next = np.ones(n - 1, dtype=bool)
    for k in primary_key:
        col = ordered.column(k).combine_chunks()
        equal = pc.fill_null(pc.equal(col.slice(0, n - 1), col.slice(1)), False)
        same_as_next &= equal.to_numpy(zero_copy_only=False)
    last[:-1] = ~same_as_next
    first = np.ones(n, dtype=bool)
    first[1:] = ~same_as_next
    ordered = _carry_unchanged_toast(ordered, first)
    return ordered.filter(pa.array(last))


def _carry_unchanged_toast(ordered: pa.Table, first: np.ndarray) -> pa.Table:
    """PostgreSQL does not log an unchanged TOASTed value (a large text) in an update's
    new row; Debezium sends a placeholder instead. Such a value takes the one of the
    key's previous change in the batch; the key's first change keeps the placeholder,
    which the merge resolves against the silver row (``_toast_aware``)."""
    n = ordered.num_rows
    index = np.arange(n)
    for i, field in enumerate(ordered.schema):
        if not pa.types.is_string(field.type) or field.name.startswith("_"):
            continue
        column = ordered.column(i).combine_chunks()
        placeholder = pc.fill_null(pc.equal(column, UNAVAILABLE), False)
        mask = placeholder.to_numpy(zero_copy_only=False)
        if not mask.any():
            continue
        source = np.where(mask & ~first, 0, index)  # 0: take from the last one before
        source = np.maximum.accumulate(source)  # never crosses a key: firsts stay put
        ordered = ordered.set_column(i, field.name, column.take(pa.array(source)))
    return ordered


def _toast_aware(schema: pa.Schema, target: DeltaTable) -> dict[str, str]:
    """Merge assignments: a placeholder left in the source row keeps the silver value
    (for the columns silver has already: an added one has no older value)."""
    existing = {f.name for f in target.schema().fields}
    return {
        quote(c.name): (
            f"CASE WHEN s.{quote(c.name)} = '{UNAVAILABLE}' "
            f"THEN t.{quote(c.name)} ELSE s.{quote(c.name)} END"
            if pa.types.is_string(c.type) and not c.name.startswith("_") and c.name in existing
            else f"s.{quote(c.name)}"
        )
        for c in schema
    }


def quote(name: str) -> str:
    """A column name as a quoted SQL identifier for delta-rs (DataFusion) expressions: the
    contract's names are checked, but a column added in the source names itself."""
    return '"' + name.replace('"', '""') + '"'


def _on(primary_key: tuple[str, ...] | list[str]) -> str:
    return " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in primary_key)


def tail_uri(silver_uri: str) -> str:
    """The tail of the silver table at ``silver_uri``: ``<lake>/silver_tail/<table>``
    beside ``<lake>/silver/<table>`` (never inside it: a vacuum of the base would remove
    files it does not know)."""
    head, layer, table = silver_uri.rstrip("/").rsplit("/", 2)
    return f"{head}/{layer}{TAIL_SUFFIX}/{table}"


def tail_schema(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field("_op", pa.string()))


@dataclass(frozen=True)
class Pending:
    """The bronze changes not applied to silver yet (offsets after ``applied``)."""

    bronze: DeltaTable
    silver: DeltaTable | None
    applied: int
    changes: pa.Table
    tail: DeltaTable | None = None


def read_pending(
    contract: Contract,
    bronze_uri: str,
    silver_uri: str,
    storage_options: dict[str, str],
    columns: list[str] | None = None,
) -> Pending | ApplyResult:
    """What an apply has to do (``columns`` of bronze, default those silver needs), or the
    result of an apply with nothing to do. Every engine's apply starts here."""
    bronze = delta.open_table(bronze_uri, storage_options)
    if bronze is None:
        return ApplyResult(contract.table, 0, 0, 0, 0)
    silver = delta.open_table(silver_uri, storage_options)
    tail = delta.open_table(tail_uri(silver_uri), storage_options)
    applied = max(delta.committed_version(silver, APP_ID), delta.committed_version(tail, APP_ID))
    # the log's statistics pick the files: a footer read per file of bronze would make
    # each micro-batch's cost grow with the change log
    changes = bronze.to_pyarrow_dataset(file_pruning_predicate=f"_offset > {applied}").to_table(
        columns=columns or _change_columns(contract, bronze),
        filter=ds.field("_offset") > applied,
    )
    if changes.num_rows == 0:
        return ApplyResult(contract.table, 0, 0, 0, _count(silver))
    return Pending(bronze, silver, applied, changes, tail)


def _plan(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> tuple[Pending, int, pa.Table, pa.Schema] | ApplyResult:
    """The pending changes, their last offset, their last change per key, silver's schema
    for them (or the result of an apply with nothing to do)."""
    pending = read_pending(contract, bronze_uri, silver_uri, storage_options)
    if isinstance(pending, ApplyResult):
        return pending
    changes = pending.changes
    version = int(pc.max(changes.column("_offset")).as_py())
    latest = latest_per_key(changes, contract.primary_key)
    return pending, version, latest, silver_schema(contract, changes.schema)


def apply(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    """Apply the pending bronze changes: append their last change per key to the tail
    (into an empty silver table, straight to the base). Committed against the snapshot
    they were planned on: when another apply committed first, plan again (then it is a
    no-op). ``rows`` is the base's count: the tail's changes count at the next fold."""
    return _committed(_apply_once, contract, bronze_uri, silver_uri, storage_options)


def _committed(
    once: Callable[[Contract, str, str, dict[str, str]], ApplyResult],
    contract: Contract,
    bronze_uri: str,
    silver_uri: str,
    storage_options: dict[str, str],
) -> ApplyResult:
    return delta.commit_once(
        partial(once, contract, bronze_uri, silver_uri, storage_options),
        f"applying {contract.table} to silver",
    )


def _apply_once(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    plan = _plan(contract, bronze_uri, silver_uri, storage_options)
    if isinstance(plan, ApplyResult):
        return plan
    pending, version, latest, schema = plan
    silver, changes = pending.silver, pending.changes
    is_delete = pc.equal(latest.column("_op"), "d")
    if silver is None:  # create it, then plan on it: another apply may have been first
        delta.ensure_table(silver_uri, schema, storage_options)
        return _apply_once(contract, bronze_uri, silver_uri, storage_options)
    deleted = int(pc.sum(is_delete).as_py() or 0)
    base_rows = _count(silver)
    if base_rows == 0 and _count(pending.tail) == 0:  # the first batch: no merge
        rows = latest.filter(pc.invert(is_delete)).select(schema.names).cast(schema)
        delta.append(silver, rows, app_id=APP_ID, version=version, storage_options=storage_options)
        return ApplyResult(
            contract.table, changes.num_rows, rows.num_rows, 0, rows.num_rows, version
        )
    tail = pending.tail or delta.ensure_table(
        tail_uri(silver_uri), tail_schema(schema), storage_options
    )
    delta.append(
        tail,
        latest.select([*schema.names, "_op"]),
        app_id=APP_ID,
        version=version,
        storage_options=storage_options,
    )
    return ApplyResult(
        contract.table, changes.num_rows, latest.num_rows - deleted, deleted, base_rows, version
    )


def apply_merge(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    """The copy-on-write apply: one MERGE of the pending changes into the base, which
    rewrites every file holding a changed key (the tail folded first). Kept for the
    benchmark (``bench/microbatch.py``) that measures the tail against it."""
    fold(contract, silver_uri, storage_options)
    return _committed(_merge_once, contract, bronze_uri, silver_uri, storage_options)


def _merge_once(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    plan = _plan(contract, bronze_uri, silver_uri, storage_options)
    if isinstance(plan, ApplyResult):
        return plan
    pending, version, latest, schema = plan
    changes = pending.changes
    silver = pending.silver or delta.ensure_table(silver_uri, schema, storage_options)
    metrics = _merge(contract, silver, latest, schema, delta.commit_properties(APP_ID, version))
    return ApplyResult(
        contract.table,
        changes.num_rows,
        metrics["num_target_rows_inserted"] + metrics["num_target_rows_updated"],
        metrics["num_target_rows_deleted"],
        _count(delta.open_table(silver_uri, storage_options)),
        version,
    )


def _merge(
    contract: Contract,
    silver: DeltaTable,
    latest: pa.Table,
    schema: pa.Schema,
    props: CommitProperties,
) -> dict[str, Any]:
    """Deletes delete, other changes upsert, only over a row of an older source position;
    a placeholder keeps the silver value."""
    newer = (
        "(s._commit_pos > t._commit_pos OR "
        "(s._commit_pos = t._commit_pos AND s._event_pos > t._event_pos))"
    )
    assign = {quote(c): f"s.{quote(c)}" for c in schema.names}
    metrics: dict[str, Any] = (
        silver.merge(
            latest,
            predicate=_on(contract.primary_key),
            source_alias="s",
            target_alias="t",
            merge_schema=True,  # columns added in the source
            commit_properties=props,
            writer_properties=delta.writer_properties(),
        )
        .when_matched_delete(predicate=f"s._op = 'd' AND {newer}")
        .when_matched_update(
            updates=_toast_aware(schema, silver), predicate=f"s._op <> 'd' AND {newer}"
        )
        .when_not_matched_insert(updates=assign, predicate="s._op <> 'd'")
        .execute()
    )
    return metrics


@dataclass(frozen=True)
class FoldResult:
    table: str
    folded: int  # tail rows merged into the base and removed from the tail
    rows: int  # rows in the base after


def fold(contract: Contract, silver_uri: str, storage_options: dict[str, str]) -> FoldResult:
    """Merge the tail into the base, then remove the tail rows it merged: two commits.

    The merge commits the tail's last offset as the base's ``bronze`` app transaction;
    the removal takes only rows up to that offset, so a batch an apply appended to the
    tail meanwhile stays. Interrupted between the two, the tail still holds changes the
    base has: :func:`read_current` gives the same state (a change never wins over the
    row its own position produced), and the next fold merges them again as a no-op (the
    merge only overwrites an older position) before removing them."""
    table = contract.table
    tail = delta.open_table(tail_uri(silver_uri), storage_options)
    if tail is None or _count(tail) == 0:
        return FoldResult(table, 0, _count(delta.open_table(silver_uri, storage_options)))
    upto = delta.commit_once(
        partial(_fold_once, contract, silver_uri, storage_options),
        f"folding the tail of {table} into silver",
    )
    if upto < 0:
        return FoldResult(table, 0, _count(delta.open_table(silver_uri, storage_options)))
    folded = delta.commit_once(
        partial(_drop_folded, tail_uri(silver_uri), upto, storage_options),
        f"removing the folded tail of {table}",
    )
    return FoldResult(table, folded, _count(delta.open_table(silver_uri, storage_options)))


def _fold_once(contract: Contract, silver_uri: str, storage_options: dict[str, str]) -> int:
    """Merge the tail into the base; the last offset merged (-1: the tail was empty)."""
    tail = delta.open_table(tail_uri(silver_uri), storage_options)
    changes = tail.to_pyarrow_table() if tail is not None else None
    if changes is None or changes.num_rows == 0:
        return -1
    upto = int(pc.max(changes.column("_offset")).as_py())
    latest = _reduce_tail(changes, contract.primary_key)
    schema = silver_schema(contract, changes.schema)
    base = delta.ensure_table(silver_uri, schema, storage_options)
    version = max(upto, delta.committed_version(base, APP_ID))
    _merge(contract, base, latest, schema, delta.commit_properties(APP_ID, version))
    return upto


def _reduce_tail(changes: pa.Table, primary_key: tuple[str, ...] | list[str]) -> pa.Table:
    """The last change per key of the tail's batches; of two at the same source position
    (a re-delivery in a later batch), the first applied, as the merge keeps it."""
    return latest_per_key(changes.sort_by([("_offset", "descending")]), tuple(primary_key))


def _drop_folded(uri: str, upto: int, storage_options: dict[str, str]) -> int:
    tail = delta.open_table(uri, storage_options)
    if tail is None:
        return 0
    metrics = tail.delete(
        f"_offset <= {upto}",
        commit_properties=CommitProperties(custom_metadata={delta.WRITER_KEY: delta.writer()}),
        writer_properties=delta.writer_properties(),
    )
    return int(metrics.get("num_deleted_rows", 0))


class Folder:
    """Folds in background threads, at most one per table at a time: a lander that
    follows its sources keeps applying its batches while a fold rewrites base files
    (the two commit to different tables; see :func:`fold`). A fold that fails is logged
    and left to the next one."""

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self.done: list[FoldResult] = []
        self.compactions = 0

    def start(
        self,
        contract: Contract,
        silver_uri: str,
        storage_options: dict[str, str],
        upkeep: Upkeep = "fold",
    ) -> bool:
        """Start folding (or compacting) the table's tail unless one of its upkeeps is
        running; whether it started."""
        running = self._threads.get(silver_uri)
        if running is not None and running.is_alive():
            return False
        thread = threading.Thread(
            target=self._fold,
            args=(contract, silver_uri, storage_options, upkeep),
            name=f"{upkeep}-{contract.table}",
            daemon=True,  # a fold stopped half-way is safe: the next one finishes it
        )
        self._threads[silver_uri] = thread
        thread.start()
        return True

    def _fold(
        self, contract: Contract, silver_uri: str, storage_options: dict[str, str], upkeep: Upkeep
    ) -> None:
        try:
            if upkeep == "fold":
                self.done.append(fold(contract, silver_uri, storage_options))
            else:
                compact_tail(silver_uri, storage_options)
                self.compactions += 1
        except Exception:
            log.exception("the %s of the silver tail of %s failed", upkeep, contract.table)

    def wait(self) -> None:
        for thread in list(self._threads.values()):
            thread.join()


def tail_rows(silver_uri: str, storage_options: dict[str, str]) -> int:
    """Rows waiting in the tail (from the log's statistics)."""
    return _count(delta.open_table(tail_uri(silver_uri), storage_options))


Upkeep = Literal["fold", "compact"]


def tail_due(
    silver_uri: str, storage_options: dict[str, str], *, rows: int, ratio: float, files: int
) -> Upkeep | None:
    """What the tail needs (from the logs' statistics): ``fold`` when it holds at least
    ``rows`` rows and ``ratio`` of the base's (a fold rewrites the base files its keys
    are in, so it waits until the tail is worth it); ``compact`` when it has ``files``
    files (readers read the tail whole: a compaction rewrites only the tail)."""
    tail = delta.open_table(tail_uri(silver_uri), storage_options)
    if tail is None:
        return None
    stats = delta.file_stats(tail)
    if stats is None or stats.num_rows == 0:
        return None
    waiting = delta.stats_sum(stats, "num_records")
    if waiting >= rows and waiting >= ratio * _count(delta.open_table(silver_uri, storage_options)):
        return "fold"
    return "compact" if stats.num_rows >= files else None


def compact_tail(silver_uri: str, storage_options: dict[str, str]) -> None:
    """Rewrite the tail's small files as few (Snappy, as appends write); an apply may
    append meanwhile, a fold's removal that collides plans again."""
    delta.commit_once(
        lambda: _compact(tail_uri(silver_uri), storage_options),
        f"compacting the silver tail {tail_uri(silver_uri)}",
    )


def _compact(uri: str, storage_options: dict[str, str]) -> None:
    tail = delta.open_table(uri, storage_options)
    if tail is not None:
        tail.optimize.compact(
            writer_properties=delta.writer_properties(),
            commit_properties=CommitProperties(custom_metadata={delta.WRITER_KEY: delta.writer()}),
        )


def read_current(
    silver_uri: str,
    primary_key: tuple[str, ...] | list[str],
    storage_options: dict[str, str],
    columns: list[str] | None = None,
) -> pa.Table | None:
    """The exact current state of a silver table (None when there is none yet): the
    base, with every key the tail holds changes for replaced by the newest of its base
    row and its tail changes (by source position; a delete removes it; an unchanged-TOAST
    placeholder takes the value before it). ``columns``: default the base's and those
    the tail added since."""
    base = delta.open_table(silver_uri, storage_options)
    if base is None:
        return None
    tail = delta.open_table(tail_uri(silver_uri), storage_options)
    if tail is None or _count(tail) == 0:
        return base.to_pyarrow_dataset().to_table(columns=columns)
    changes = _reduce_tail(tail.to_pyarrow_table(), primary_key)
    present = [f.name for f in base.schema().fields]
    wanted = columns or [
        *present,
        *(n for n in changes.column_names if n not in present and n != "_op"),
    ]
    pk = list(primary_key)
    needed = list(dict.fromkeys([*wanted, *pk, "_commit_pos", "_event_pos", "_offset"]))
    rows = base.to_pyarrow_dataset().to_table(columns=[c for c in needed if c in present])
    if len(pk) == 1:  # the usual key: a membership test, in the base's order
        hit = pc.is_in(rows.column(pk[0]), value_set=changes.column(pk[0]))
        rest, touched = rows.filter(pc.invert(hit)), rows.filter(hit)
    else:
        keys = changes.select(pk).group_by(pk, use_threads=False).aggregate([])
        rest = rows.join(keys, keys=pk, join_type="left anti", use_threads=False)
        touched = rows.join(keys, keys=pk, join_type="left semi", use_threads=False)
    touched = touched.append_column("_op", pa.array(["r"] * touched.num_rows, pa.string()))
    merged = pa.concat_tables(  # the base row last: at the same position, it stays
        [changes.select([c for c in [*needed, "_op"] if c in changes.column_names]), touched],
        promote_options="permissive",
    )
    latest = latest_per_key(merged, tuple(pk))
    latest = latest.filter(pc.not_equal(latest.column("_op"), "d")).drop_columns(["_op"])
    current = pa.concat_tables([rest, latest], promote_options="permissive")
    return current.select(wanted)


def reapply_keys(
    contract: Contract,
    bronze_uri: str,
    silver_uri: str,
    keys: pa.Table,
    storage_options: dict[str, str],
) -> None:
    """Recompute the silver rows of ``keys`` from their whole bronze history: for changes
    that reach bronze out of order (a replayed dead letter), which the offset-based
    apply does not see. The tail is folded first: the rows recomputed are the base's."""
    if keys.num_rows == 0:
        return
    fold(contract, silver_uri, storage_options)
    pk = list(contract.primary_key)
    bronze = DeltaTable(bronze_uri, storage_options=storage_options or None)
    first = pc.unique(keys.column(pk[0]))
    candidates = bronze.to_pyarrow_dataset().to_table(
        columns=_change_columns(contract, bronze), filter=ds.field(pk[0]).isin(first)
    )
    wanted = keys.group_by(pk).aggregate([])
    latest = latest_per_key(
        candidates.join(wanted, keys=pk, join_type="left semi"), contract.primary_key
    )
    schema = silver_schema(contract, candidates.schema)
    on = _on(pk)
    assign = {quote(c): f"s.{quote(c)}" for c in schema.names}
    target = DeltaTable(silver_uri, storage_options=storage_options or None)
    (
        target.merge(
            latest,
            predicate=on,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            writer_properties=delta.writer_properties(),
        )
        .when_matched_delete(predicate="s._op = 'd'")
        .when_matched_update(updates=_toast_aware(schema, target), predicate="s._op <> 'd'")
        .when_not_matched_insert(updates=assign, predicate="s._op <> 'd'")
        .execute()
    )


def _count(table: DeltaTable | None) -> int:
    if table is None:
        return 0
    actions = pa.table(table.get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0)
