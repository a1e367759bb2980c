"""Decode raw Debezium records of one topic into typed Arrow rows, vectorised.

The JSON is parsed by Arrow's reader against the schema the table's contract implies;
values are converted to the lake's types column by column. A record that cannot be
parsed, violates the envelope or the contract, or has a value that does not convert, is
returned as a reject with its reason instead of stopping the batch.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from lakehouse.cdc.file_source import RawBatch
from lakehouse.cdc.pii import Masker
from lakehouse.cdc.positions import (
    POSITION_TYPE,
    SOURCE_FIELDS,
    SUPPORTED_CONNECTORS,
    positions,
)
from lakehouse.contracts import Contract

META_FIELDS = [
    pa.field("_op", pa.string()),
    pa.field("_commit_pos", POSITION_TYPE),
    pa.field("_event_pos", POSITION_TYPE),
    pa.field("_tx_id", pa.int64()),
    pa.field("_source_ts", pa.timestamp("us", tz="UTC")),
    pa.field("_is_snapshot", pa.bool_()),
    pa.field("_offset", pa.int64()),
]

REJECT_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)

_SOURCE = pa.struct(
    [
        pa.field("connector", pa.string()),
        pa.field("ts_ms", pa.int64()),
        pa.field("snapshot", pa.string()),
        *SOURCE_FIELDS,
    ]
)
_OPS = pa.array(["r", "c", "u", "d"])
# Lines parsed together when a batch holds a bad record and has to be split up.
_RETRY_CHUNK = 1024
# A tombstone says its value is null; a record without the field has lost its value.
_NULL_VALUE = re.compile(rb'"value"\s*:\s*null\s*[,}]')


def bronze_schema(contract: Contract) -> pa.Schema:
    """Bronze change-log schema: data columns (nullable: a delete may carry only the key)
    then the change metadata."""
    data = [pa.field(f.name, f.type) for f in contract.arrow_schema]
    return pa.schema([*data, *META_FIELDS])


def record_schema(contract: Contract) -> pa.Schema:
    image = contract.wire_schema
    value = pa.struct(
        [
            pa.field("before", image),
            pa.field("after", image),
            pa.field("op", pa.string()),
            pa.field("ts_ms", pa.int64()),
            pa.field("source", _SOURCE),
        ]
    )
    return pa.schema([pa.field("key", contract.key_schema), pa.field("value", value)])


@dataclass
class Decoded:
    rows: pa.Table  # bronze_schema(contract)
    rejects: pa.Table  # REJECT_SCHEMA
    tombstones: int
    blank_lines: int


def decode(contract: Contract, batch: RawBatch, masker: Masker | None = None) -> Decoded:
    """Parse, check and convert a batch; PII columns are masked when a masker is given
    (the lander always gives one), in the rows and in the dead letters' raw records."""
    schema = record_schema(contract)
    parsed, offsets, bad, blanks = _parse(batch, schema)
    rejects: list[tuple[int, str]] = list(bad)
    tombstones = 0
    rows = bronze_schema(contract).empty_table()
    if parsed.num_rows:
        value = parsed.column("value").combine_chunks()
        key = parsed.column("key").combine_chunks()
        is_tombstone, not_tombstone = _tombstones(contract, key, value, batch, offsets)
        tombstones = int(pc.sum(is_tombstone).as_py() or 0)
        # Checks and conversions run over every record (null in, null out for the
        # tombstones); only the flat result is filtered, which is far cheaper than
        # filtering the nested records first.
        reason = _check_envelope(contract, key, value)
        reason = pc.if_else(pc.is_valid(not_tombstone), not_tombstone, reason)
        rows, reason = _to_rows(contract, value, offsets, reason, batch)
        bad_mask = pc.and_(pc.is_valid(reason), pc.invert(is_tombstone))
        if pc.any(bad_mask).as_py():
            bad_idx = np.flatnonzero(bad_mask.to_numpy(False))
            rejects.extend(
                zip(offsets[bad_idx].tolist(), reason.take(bad_idx).to_pylist(), strict=True)
            )
        if tombstones or rejects:
            rows = rows.filter(pc.invert(pc.or_(bad_mask, is_tombstone)))
    if masker is not None:
        rows = masker.mask_table(contract, rows)
        rows = masker.mask_guessed(contract, rows)
    return Decoded(rows, _reject_table(contract, batch, rejects, masker), tombstones, blanks)


def _parse(
    batch: RawBatch, schema: pa.Schema
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str]], int]:
    """Parse the batch; on failure, parse it in chunks and bisect the failing chunks."""
    # "infer": a column added in the source arrives as a field the contract does not
    # know; Arrow infers its type and the lander carries it (schema evolution)
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    tables: list[pa.Table] = []
    offsets: list[np.ndarray] = []
    bad: list[tuple[int, str]] = []
    blanks = 0

    def attempt(lo: int, hi: int, size: int) -> None:
        nonlocal blanks
        whole = lo == 0 and hi == batch.count
        lines = [] if whole else batch.lines[lo:hi]
        try:
            data = batch.data if whole else b"\n".join(lines)
            table = pj.read_json(io.BytesIO(data), parse_options=options)
            if table.num_rows != hi - lo:  # Arrow skips blank lines
                raise ValueError("blank line")
        except (pa.ArrowInvalid, ValueError) as exc:
            if hi - lo == 1:
                if batch.lines[lo].strip():
                    bad.append((batch.first_offset + lo, _parse_reason(exc)))
                else:
                    blanks += 1
                return
            step = max(1, min(size, (hi - lo + 1) // 2))
            for start in range(lo, hi, step):
                attempt(start, min(start + step, hi), step)
            return
        tables.append(table)
        offsets.append(np.arange(batch.first_offset + lo, batch.first_offset + hi, dtype=np.int64))

    attempt(0, batch.count, _RETRY_CHUNK)
    if not tables:
        return schema.empty_table(), np.empty(0, dtype=np.int64), bad, blanks
    order = np.argsort(np.concatenate([o[:1] for o in offsets]), kind="stable")
    table = pa.concat_tables([tables[i] for i in order], promote_options="permissive")
    return table, np.concatenate([offsets[i] for i in order]), bad, blanks


def _tombstones(
    contract: Contract, key: pa.Array, value: pa.Array, batch: RawBatch, offsets: np.ndarray
) -> tuple[pa.Array, pa.Array]:
    """Which records are tombstones, and why a record without a value is not one.

    A tombstone (Debezium's, after a delete; Kafka's record with a null value) carries
    the deleted row's key and ``"value": null``. A record with no ``value`` field at all,
    or a null value without the key, is malformed: a dead letter, never a silent skip."""
    null_value = pc.is_null(value)
    n = len(value)
    if not pc.any(null_value).as_py():
        return pa.array(np.zeros(n, dtype=bool)), pa.nulls(n, pa.string())
    keyed = pc.is_valid(key)
    for k in contract.primary_key:
        keyed = pc.and_(keyed, pc.is_valid(pc.struct_field(key, k)))
    keyed_np = pc.fill_null(keyed, False).to_numpy(zero_copy_only=False)
    tombstone = np.zeros(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(null_value.to_numpy(zero_copy_only=False)):
        line = batch.lines[offsets[i] - batch.first_offset]
        if not _NULL_VALUE.search(line):
            reasons[i] = 'record without a value (a tombstone carries "value": null)'
        elif not keyed_np[i]:
            reasons[i] = "tombstone without the key: a tombstone names the deleted row's key"
        else:
            tombstone[i] = True
    return pa.array(tombstone), pa.array(reasons, pa.string())


def _parse_reason(exc: Exception) -> str:
    text = str(exc).split(" in row ")[0]
    if "changed from" in text or "Failed to convert" in text:
        return f"bad type: {text.removeprefix('JSON parse error: ')}"
    return f"not a JSON record: {text}"


def _set_reason(reason: pa.Array, condition: pa.Array, message: pa.Array | str) -> pa.Array:
    """Record ``message`` where ``condition`` holds and no earlier reason was recorded."""
    condition = pc.fill_null(condition, False)
    return pc.if_else(pc.and_(pc.is_null(reason), condition), message, reason)


def _check_envelope(contract: Contract, key: pa.Array, value: pa.StructArray) -> pa.Array:
    n = len(value)
    reason = pa.nulls(n, pa.string())
    op = pc.struct_field(value, "op")
    reason = _set_reason(reason, pc.is_null(op), "missing op")
    reason = _set_reason(
        reason,
        pc.invert(pc.is_in(op, _OPS)),
        pc.binary_join_element_wise("unknown op '", op, "' (expected r, c, u or d)", ""),
    )
    for k in contract.primary_key:
        missing = pc.or_(pc.is_null(key), pc.is_null(pc.struct_field(key, k)))
        reason = _set_reason(reason, missing, f"missing key column {k!r}")
    is_delete = pc.equal(op, "d")
    before, after = pc.struct_field(value, "before"), pc.struct_field(value, "after")
    reason = _set_reason(
        reason,
        pc.and_(is_delete, pc.is_null(before)),
        "delete without a 'before' image",
    )
    reason = _set_reason(
        reason,
        pc.and_(pc.invert(is_delete), pc.is_null(after)),
        pc.binary_join_element_wise("op '", op, "' without an 'after' image", ""),
    )
    source = pc.struct_field(value, "source")
    connector = pc.struct_field(source, "connector")
    reason = _set_reason(
        reason,
        pc.invert(pc.is_in(connector, pa.array(SUPPORTED_CONNECTORS))),
        pc.binary_join_element_wise(
            "unsupported connector '", pc.fill_null(connector, "none"), "'", ""
        ),
    )
    reason = _set_reason(reason, pc.is_null(pc.struct_field(source, "ts_ms")), "no source.ts_ms")
    return reason


def _to_rows(
    contract: Contract,
    value: pa.StructArray,
    offsets: np.ndarray,
    reason: pa.Array,
    batch: RawBatch,
) -> tuple[pa.Table, pa.Array]:
    op = pc.struct_field(value, "op")
    is_delete = pc.fill_null(pc.equal(op, "d"), False)
    before, after = pc.struct_field(value, "before"), pc.struct_field(value, "after")
    columns: list[pa.Array] = []
    for col in contract.columns:
        raw = pc.if_else(
            is_delete, pc.struct_field(before, col.name), pc.struct_field(after, col.name)
        )
        if not col.nullable:
            violation = pc.fill_null(pc.and_(pc.invert(is_delete), pc.is_null(raw)), False)
            if pc.any(violation).as_py():
                violation = _present(violation, col.name, batch, offsets)
            reason = _set_reason(
                reason, violation, f"column {col.name!r} is null but its contract says not null"
            )
        converted, failed = convert(raw, col.arrow_type)
        if failed is not None:
            reason = _set_reason(
                reason,
                failed,
                f"column {col.name!r}: value does not convert to {col.type}",
            )
        columns.append(converted)
    added = _added_columns(contract, value, is_delete)
    source = pc.struct_field(value, "source")
    commit_pos, event_pos, problem = positions(source)
    reason = _set_reason(reason, pc.is_valid(problem), problem)
    source_ts = pc.cast(pc.struct_field(source, "ts_ms"), pa.timestamp("ms", tz="UTC"))
    meta = [
        op,
        commit_pos,
        event_pos,
        pc.struct_field(source, "txId"),
        pc.cast(source_ts, pa.timestamp("us", tz="UTC")),
        pc.equal(op, "r"),
        pa.array(offsets, pa.int64()),
    ]
    data = [pa.field(f.name, f.type) for f in contract.arrow_schema]
    data += [pa.field(name, array.type) for name, array in added]
    schema = pa.schema([*data, *META_FIELDS])
    table = pa.Table.from_arrays([*columns, *(a for _, a in added), *meta], schema=schema)
    return table, reason


def _present(flagged: pa.Array, name: str, batch: RawBatch, offsets: np.ndarray) -> pa.Array:
    """Of the records flagged for a null in a not-null column, those that carry the field.
    A record without the field at all comes after the column was dropped in the source:
    its null is not a violation (schema evolution), the column just stops being filled."""
    mask = flagged.to_numpy(zero_copy_only=False).copy()
    token = f'"{name}":'.encode()
    for i in np.flatnonzero(mask):  # only the flagged records: the failure path
        if token not in batch.lines[offsets[i] - batch.first_offset]:
            mask[i] = False
    return pa.array(mask)


def _added_columns(
    contract: Contract, value: pa.StructArray, is_delete: pa.Array
) -> list[tuple[str, pa.Array]]:
    """Columns the records carry but the contract does not know (added in the source),
    with the type Arrow inferred: integers, floats, booleans and strings keep their
    value as sent; nested values are kept as JSON text."""
    known = set(contract.column_names)
    after_type = value.type.field("after").type
    before_type = value.type.field("before").type
    names = [f.name for f in after_type if f.name not in known]
    names += [f.name for f in before_type if f.name not in known and f.name not in names]
    after, before = pc.struct_field(value, "after"), pc.struct_field(value, "before")
    added = []
    for name in names:
        parts = []
        for image, image_type in ((after, after_type), (before, before_type)):
            if image_type.get_field_index(name) >= 0:
                parts.append(pc.struct_field(image, name))
            else:
                parts.append(None)
        a_part, b_part = parts
        kind = (a_part if a_part is not None else b_part).type  # type: ignore[union-attr]
        if pa.types.is_null(kind):
            continue  # null in every record of the batch: nothing to keep yet
        if pa.types.is_nested(kind):
            continue  # a JSON object where a column was expected: not a Debezium column
        a_part = a_part if a_part is not None else pa.nulls(len(value), kind)
        b_part = b_part if b_part is not None else pa.nulls(len(value), kind)
        if a_part.type != b_part.type:
            b_part = pc.cast(b_part, a_part.type)
        added.append((name, pc.if_else(is_delete, b_part, a_part)))
    return added


def convert(raw: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """Cast a wire column to its lake type. Values that do not convert become null and
    are flagged in the second result (None when every value converted)."""
    if raw.type == target:
        return raw, None
    try:
        return pc.cast(raw, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[object] = []
    failed: list[bool] = []
    for scalar in raw:  # slow path, only for a batch that holds a bad value
        try:
            out.append(pc.cast(scalar, target).as_py())
            failed.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
            failed.append(True)
    return pa.array(out, target), pa.array(failed)


def _reject_table(
    contract: Contract, batch: RawBatch, rejects: list[tuple[int, str]], masker: Masker | None
) -> pa.Table:
    if not rejects:
        return REJECT_SCHEMA.empty_table()
    rejects.sort()
    offsets = [o for o, _ in rejects]
    lines = [batch.lines[o - batch.first_offset] for o in offsets]
    raw = (
        [masker.mask_raw(contract, line) for line in lines]
        if masker is not None
        else [line.decode("utf-8", "replace") for line in lines]
    )
    now = datetime.now(UTC)
    return pa.table(
        {
            "topic": [batch.topic] * len(rejects),
            "offset": pa.array(offsets, pa.int64()),
            "reason": [r for _, r in rejects],
            "raw": raw,
            "failed_at": pa.array([now] * len(rejects), pa.timestamp("us", tz="UTC")),
        },
        schema=REJECT_SCHEMA,
    )
