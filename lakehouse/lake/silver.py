"""Silver: the current state of each source table, one row per primary key.

The bronze rows not yet applied (``_offset`` above the silver table's ``bronze`` app
transaction) are reduced to the last change per key, in source order, then merged:
deletes remove the row, other changes upsert it. A change never overwrites a row that
a later source position produced, so applying in any batch split gives the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake

from lakehouse.contracts import Contract
from lakehouse.lake import delta

APP_ID = "bronze"
# Debezium's stand-in for a value PostgreSQL did not send (`unavailable.value.placeholder`)
UNAVAILABLE = "__debezium_unavailable_value"
SILVER_META = ["_commit_pos", "_event_pos", "_source_ts", "_offset"]


@dataclass(frozen=True)
class ApplyResult:
    table: str
    changes: int
    upserted: int
    deleted: int
    rows: int


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


@dataclass(frozen=True)
class Pending:
    """The bronze changes not applied to silver yet (offsets after ``applied``)."""

    bronze: DeltaTable
    silver: DeltaTable | None
    applied: int
    changes: pa.Table


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
    applied = delta.committed_version(silver, APP_ID)
    changes = bronze.to_pyarrow_dataset().to_table(
        columns=columns or _change_columns(contract, bronze),
        filter=ds.field("_offset") > applied,
    )
    if changes.num_rows == 0:
        return ApplyResult(contract.table, 0, 0, 0, _count(silver))
    return Pending(bronze, silver, applied, changes)


def apply(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    """Apply the pending bronze changes, committed against the silver snapshot they were
    planned on: when another apply committed first, plan again (then it is a no-op)."""
    return delta.commit_once(
        partial(_apply_once, contract, bronze_uri, silver_uri, storage_options),
        f"applying {contract.table} to silver",
    )


def _apply_once(
    contract: Contract, bronze_uri: str, silver_uri: str, storage_options: dict[str, str]
) -> ApplyResult:
    pending = read_pending(contract, bronze_uri, silver_uri, storage_options)
    if isinstance(pending, ApplyResult):
        return pending
    silver, changes = pending.silver, pending.changes
    version = pc.max(changes.column("_offset")).as_py()
    latest = latest_per_key(changes, contract.primary_key)
    is_delete = pc.equal(latest.column("_op"), "d")
    schema = silver_schema(contract, changes.schema)
    props = delta.commit_properties(APP_ID, version)

    if silver is None:  # create it, then plan on it: another apply may have been first
        delta.ensure_table(silver_uri, schema, storage_options)
        return _apply_once(contract, bronze_uri, silver_uri, storage_options)
    if _count(silver) == 0:
        rows = latest.filter(pc.invert(is_delete)).select(schema.names).cast(schema)
        write_deltalake(
            silver,
            rows,
            mode="append",
            schema_mode="merge",
            storage_options=storage_options or None,
            commit_properties=props,
        )
        return ApplyResult(contract.table, changes.num_rows, rows.num_rows, 0, rows.num_rows)

    on = _on(contract.primary_key)
    newer = (
        "(s._commit_pos > t._commit_pos OR "
        "(s._commit_pos = t._commit_pos AND s._event_pos > t._event_pos))"
    )
    assign = {quote(c): f"s.{quote(c)}" for c in schema.names}
    metrics = (
        silver.merge(
            latest,
            predicate=on,
            source_alias="s",
            target_alias="t",
            merge_schema=True,  # columns added in the source
            commit_properties=props,
        )
        .when_matched_delete(predicate=f"s._op = 'd' AND {newer}")
        .when_matched_update(
            updates=_toast_aware(schema, silver), predicate=f"s._op <> 'd' AND {newer}"
        )
        .when_not_matched_insert(updates=assign, predicate="s._op <> 'd'")
        .execute()
    )
    upserted = metrics["num_target_rows_inserted"] + metrics["num_target_rows_updated"]
    return ApplyResult(
        contract.table,
        changes.num_rows,
        upserted,
        metrics["num_target_rows_deleted"],
        _count(DeltaTable(silver_uri, storage_options=storage_options or None)),
    )


def reapply_keys(
    contract: Contract,
    bronze_uri: str,
    silver_uri: str,
    keys: pa.Table,
    storage_options: dict[str, str],
) -> None:
    """Recompute the silver rows of ``keys`` from their whole bronze history: for changes
    that reach bronze out of order (a replayed dead letter), which the offset-based
    apply does not see."""
    if keys.num_rows == 0:
        return
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
        target.merge(latest, predicate=on, source_alias="s", target_alias="t", merge_schema=True)
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
