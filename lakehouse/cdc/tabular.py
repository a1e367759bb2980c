"""Rows of a file or an API page into bronze rows, checked against the table's contract.

A source beside CDC (``lakehouse.cdc.sources``) hands over its rows as text, one string
column per field, with each row's source position; this module does what ``decode`` does
for Debezium records: every value is converted to the contract's type column by column, a
row with a missing key, a null in a not-null column or a value that does not convert is
returned as a reject with its reason, and the PII columns are masked, in the rows and in
the rejects' raw records. The rows get the change log's metadata, so that bronze and
silver take them as they take change events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.cdc.decode import REJECT_SCHEMA, bronze_schema, convert
from lakehouse.cdc.pii import Masker
from lakehouse.cdc.positions import POSITION_TYPE
from lakehouse.contracts import Contract

# Columns a source adds to its rows: where each row's change sits in source order, and
# the row as the source gave it (a JSON object, for the dead letters).
COMMIT_POS = "_src_commit_us"  # int64: the file's mtime, the row's cursor, in microseconds
EVENT_POS = "_src_event"  # string: the row's place after the commit position (an integer)
AT = "_src_at"  # string: where the row was read (a file and its row number, a URL)
ERROR = "_src_error"  # string: why the reader could not read it (an unreadable file)
SOURCE_COLUMNS = (COMMIT_POS, EVENT_POS, AT, ERROR)
# Files and pages carry the current state of a row, never a delete: an upsert.
OP = "u"


@dataclass
class Checked:
    rows: pa.Table  # bronze_schema(contract), without _ingested_at
    rejects: pa.Table  # REJECT_SCHEMA


def check(
    contract: Contract, batch: pa.Table, topic: str, first_offset: int, masker: Masker
) -> Checked:
    """Convert, check and mask a batch of text rows; the rows get the offsets
    ``first_offset, first_offset + 1, ...`` in batch order (the rejects keep theirs)."""
    n = batch.num_rows
    offsets = pa.array(np.arange(first_offset, first_offset + n, dtype=np.int64))
    reason = (
        batch.column(ERROR).combine_chunks().cast(pa.string())
        if ERROR in batch.column_names
        else pa.nulls(n, pa.string())
    )
    columns: list[pa.Array] = []
    for col in contract.columns:
        raw = _text(batch, col.name, n)
        if col.name in contract.primary_key:
            reason = _set(reason, pc.is_null(raw), f"missing key column {col.name!r}")
        elif not col.nullable:
            reason = _set(
                reason,
                pc.is_null(raw),
                f"column {col.name!r} is null but its contract says not null",
            )
        converted, failed = _convert(raw, col.arrow_type)
        if failed is not None:
            reason = _set(
                reason, failed, f"column {col.name!r}: value does not convert to {col.type}"
            )
        columns.append(converted)
    commit_us = batch.column(COMMIT_POS).combine_chunks()
    reason = _set(reason, pc.is_null(commit_us), "no source position (cursor value missing)")
    commit = pc.cast(pc.fill_null(commit_us, 0), POSITION_TYPE)
    event = pc.cast(pc.fill_null(batch.column(EVENT_POS).combine_chunks(), "0"), POSITION_TYPE)
    source_ts = pc.cast(pc.fill_null(commit_us, 0), pa.timestamp("us", tz="UTC"))
    meta = [
        pa.array([OP] * n, pa.string()),
        commit,
        event,
        pa.nulls(n, pa.int64()),
        source_ts,
        pa.array(np.zeros(n, dtype=bool)),
        offsets,
    ]
    rows = pa.Table.from_arrays([*columns, *meta], schema=bronze_schema(contract))
    bad = pc.is_valid(reason)
    rejects = _rejects(contract, batch, topic, offsets, reason, bad, masker)
    rows = masker.mask_table(contract, rows.filter(pc.invert(bad)))
    return Checked(rows, rejects)


def _text(batch: pa.Table, name: str, n: int) -> pa.Array:
    """A field as text: null when the source did not send it, or sent an empty string
    (a blank cell of a CSV or a spreadsheet)."""
    if name not in batch.column_names:
        return pa.nulls(n, pa.string())
    column = pc.cast(batch.column(name).combine_chunks(), pa.string())
    column = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _set(reason: pa.Array, condition: pa.Array, message: str) -> pa.Array:
    """Record ``message`` where ``condition`` holds and no earlier reason was recorded."""
    condition = pc.fill_null(condition, False)
    return pc.if_else(pc.and_(pc.is_null(reason), condition), message, reason)


def _convert(raw: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """Text to the lake type as ``decode`` converts; a UTC zone on a naive timestamp is
    dropped first (a Parquet file's or a spreadsheet's timestamps may carry one)."""
    if pa.types.is_timestamp(target) and target.tz is None:
        raw = pc.replace_substring_regex(raw, r"(Z|[+-]00:?00)$", "")
    return convert(raw, target)


def _rejects(
    contract: Contract,
    batch: pa.Table,
    topic: str,
    offsets: pa.Array,
    reason: pa.Array,
    bad: pa.Array,
    masker: Masker,
) -> pa.Table:
    if not pc.any(bad).as_py():
        return REJECT_SCHEMA.empty_table()
    index = pa.array(np.flatnonzero(bad.to_numpy(zero_copy_only=False)))
    fields = [n for n in batch.column_names if n not in SOURCE_COLUMNS]
    rows = batch.select(fields).take(index).to_pylist()
    at = _text(batch, AT, batch.num_rows).take(index).to_pylist()
    now = datetime.now(UTC)
    return pa.table(
        {
            "topic": [topic] * len(index),
            "offset": offsets.take(index),
            "reason": reason.take(index),
            "raw": [mask_raw(contract, w, r, masker) for w, r in zip(at, rows, strict=True)],
            "failed_at": pa.array([now] * len(index), pa.timestamp("us", tz="UTC")),
        },
        schema=REJECT_SCHEMA,
    )


def mask_raw(contract: Contract, at: str | None, row: dict[str, object], masker: Masker) -> str:
    """The row for a dead letter, ``{"at": where, "row": {...}}``: the values of the
    contract's PII columns, of the fields it does not know, and of every field while it
    is unreviewed, masked."""
    keep = {c.name for c in contract.columns if not c.pii} if contract.reviewed else set()
    masked = {
        name: value if name in keep or value is None else masker.token(value)
        for name, value in row.items()
    }
    return orjson.dumps({"at": at, "row": masked}).decode()
