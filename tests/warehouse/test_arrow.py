"""Trino's results as Arrow: the types come from the query's declared column types, so a
decimal stays exact and an empty result keeps its schema (what DuckDB gives)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from lakehouse.warehouse.arrow import arrow_type, trino_arrow

# (name, type_code, ...): the first two fields of the DB-API description Trino's client gives
DESCRIPTION = [
    ("id", "bigint"),
    ("n", "integer"),
    ("price", "decimal(18,2)"),
    ("name", "varchar"),
    ("code", "char(3)"),
    ("day", "date"),
    ("placed_at", "timestamp(3)"),
    ("published_at", "timestamp(3) with time zone"),
    ("ok", "boolean"),
    ("share", "double"),
]


def test_types_follow_the_declared_columns() -> None:
    paris = ZoneInfo("Europe/Paris")
    rows = [
        [
            1, 7, Decimal("28.99"), "a", "abc", date(2026, 3, 1), datetime(2026, 3, 1, 9, 30),
            datetime(2026, 3, 1, 10, 30, tzinfo=paris), True, 0.5,
        ],
        [2, None, None, None, None, None, None, None, None, None],
    ]  # fmt: skip
    table = trino_arrow(DESCRIPTION, rows)
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("n", pa.int32()),
            ("price", pa.decimal128(18, 2)),
            ("name", pa.string()),
            ("code", pa.string()),
            ("day", pa.date32()),
            ("placed_at", pa.timestamp("us")),
            ("published_at", pa.timestamp("us", tz="UTC")),
            ("ok", pa.bool_()),
            ("share", pa.float64()),
        ]
    )
    first = table.to_pylist()[0]
    assert first["price"] == Decimal("28.99")
    assert first["published_at"] == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # the instant
    assert first["published_at"].utcoffset() == timedelta(0)
    assert table.column("n").null_count == 1


def test_an_empty_result_keeps_its_schema() -> None:
    table = trino_arrow(DESCRIPTION, [])
    assert table.num_rows == 0
    assert table.schema.field("price").type == pa.decimal128(18, 2)


def test_a_statement_without_a_result_is_an_empty_table() -> None:
    assert trino_arrow(None, []).num_columns == 0


@pytest.mark.parametrize(
    ("trino", "arrow"),
    [
        ("decimal(38, 10)", pa.decimal128(38, 10)),
        ("varchar(20)", pa.string()),
        ("timestamp(6) with time zone", pa.timestamp("us", tz="UTC")),
        ("array(varchar)", None),  # nested: inferred from the values
    ],
)
def test_type_names(trino: str, arrow: pa.DataType | None) -> None:
    assert arrow_type(trino) == arrow


def test_a_nested_column_is_inferred() -> None:
    table = trino_arrow([("tags", "array(varchar)")], [[["a", "b"]], [None]])
    assert table.column("tags").type == pa.list_(pa.string())
    assert UTC  # imported for symmetry with the zone above
