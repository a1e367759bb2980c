"""Trino's results as Arrow, with the types the query declared.

Trino's DB-API client gives rows of Python values and, in ``cursor.description``, each
column's Trino type. The table is built column by column from those types, so that a
decimal stays ``decimal128(p, s)``, a timestamp is a ``timestamp`` (UTC when it has a time
zone) and an empty result keeps its schema: what DuckDB's own Arrow results give.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "varbinary": pa.binary(),
    "unknown": pa.null(),  # the type of a bare NULL
}
_TEXT = ("varchar", "char", "json", "uuid", "ipaddress")
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


def arrow_type(trino_type: str) -> pa.DataType | None:
    """The Arrow type of a Trino type name; None for nested types (arrays, maps, rows),
    whose Arrow type is inferred from the values."""
    name = trino_type.strip().lower()
    base = name.partition("(")[0].strip()
    if base in _SIMPLE:
        return _SIMPLE[base]
    if base in _TEXT:
        return pa.string()
    if base == "decimal":
        match = _DECIMAL.fullmatch(name)
        if match is None:
            raise ValueError(f"not a decimal type: {trino_type!r}")
        return pa.decimal128(int(match[1]), int(match[2]))
    if base == "timestamp":
        # Python's datetime holds microseconds: finer precisions arrive truncated
        return pa.timestamp("us", tz="UTC" if name.endswith("with time zone") else None)
    if base == "time" and not name.endswith("with time zone"):
        return pa.time64("us")
    return None


def trino_arrow(description: Sequence[Sequence[Any]] | None, rows: Sequence[Any]) -> pa.Table:
    """The Arrow table of a Trino result (``cursor.description`` and its rows)."""
    if not description:
        return pa.table({})
    names = [str(column[0]) for column in description]
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [
        _array(list(column), arrow_type(str(spec[1])))
        for column, spec in zip(values, description, strict=True)
    ]
    return pa.Table.from_arrays(arrays, names=names)


def _array(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    if kind is not None and pa.types.is_string(kind):
        values = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return pa.array(values, type=kind)
