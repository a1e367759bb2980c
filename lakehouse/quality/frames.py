"""Tables as pandas DataFrames, for the expectation checks (Great Expectations' pandas
engine): a Delta table of the lake, or a mart of the build area (the DuckDB warehouse,
schema ``main_marts``, on ``local``; Trino's ``analytics_marts`` on ``stack``).

Whatever the store, a column comes out with the same pandas type, so that one suite's type
expectations hold everywhere: integers ``Int64``, booleans ``boolean``, strings
``string``, floats and decimals ``float64`` (the nearest double to the decimal),
timestamps naive ``datetime64`` in UTC, dates ``datetime64[ms]``.

Only the columns asked for are read; one the table lacks is left out, for the suite's
``expect_column_to_exist`` to report.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import MissingTableError
from lakehouse.lake.catalog import trino_connection
from lakehouse.lake.delta import open_table
from lakehouse.settings import Settings

DUCKDB_MARTS_SCHEMA = "main_marts"
TRINO_MARTS_SCHEMA = "analytics_marts"


def read_lake_table(
    settings: Settings, layer: str, table: str, columns: Sequence[str]
) -> pd.DataFrame:
    """``columns`` of the Delta table ``<layer>/<table>`` of the lake."""
    uri = settings.table_uri(layer, table)
    delta = open_table(uri, settings.lake_storage_options)
    if delta is None:
        raise MissingTableError(f"no Delta table at {uri}: run `lakehouse ingest`")
    dataset = delta.to_pyarrow_dataset()
    present = [c for c in dict.fromkeys(columns) if c in dataset.schema.names]
    return to_pandas(dataset.to_table(columns=present))


def read_mart(settings: Settings, mart: str, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a mart in the build area (what dbt built, before publication)."""
    if settings.profile == "local":
        return to_pandas(_duckdb_mart(settings, mart, columns))
    return to_pandas(_trino_mart(settings, mart, columns))


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """The frame of an Arrow table, with the module's type mapping."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type):
            # through the digits: Arrow's direct cast is off by an ulp (28.99 -> 28.990...02)
            digits = pc.cast(table.column(i), pa.string())
            table = table.set_column(i, f.name, pc.cast(digits, pa.float64()))
        elif pa.types.is_timestamp(f.type) and f.type.tz is not None:
            naive = pa.timestamp(f.type.unit)  # the same instants, in UTC
            table = table.set_column(i, f.name, pc.cast(table.column(i), naive))
    return table.to_pandas(types_mapper=_pandas_type, date_as_object=False)


def _pandas_type(arrow_type: pa.DataType) -> object:
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None  # pyarrow's default


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_mart(settings: Settings, mart: str, columns: Sequence[str]) -> pa.Table:
    import duckdb

    path = settings.warehouse
    if not path.exists():
        raise MissingTableError(f"no warehouse at {path}: run `lakehouse build`")
    # read-only and closed at once: dbt needs the file to itself
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [DUCKDB_MARTS_SCHEMA, mart],
        ).fetchall()
        if not rows:
            raise MissingTableError(
                f"no mart {DUCKDB_MARTS_SCHEMA}.{mart} in {path}: run `lakehouse build`"
            )
        present = [c for c in dict.fromkeys(columns) if c in {name for (name,) in rows}]
        if not present:
            return pa.table({})
        query = (
            f"select {', '.join(_quoted(c) for c in present)} "
            f"from {_quoted(DUCKDB_MARTS_SCHEMA)}.{_quoted(mart)}"
        )
        table: pa.Table = con.execute(query).to_arrow_table()
    return table


def _trino_mart(settings: Settings, mart: str, columns: Sequence[str]) -> pa.Table:
    catalog = settings.trino_catalog
    with trino_connection(settings) as connection:
        cursor = connection.cursor()
        cursor.execute(
            f"select column_name from {_quoted(catalog)}.information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [TRINO_MARTS_SCHEMA, mart],
        )
        names = {name for (name,) in cursor.fetchall()}
        if not names:
            raise MissingTableError(
                f"no mart {catalog}.{TRINO_MARTS_SCHEMA}.{mart} in Trino: run `lakehouse build`"
            )
        present = [c for c in dict.fromkeys(columns) if c in names]
        if not present:
            return pa.table({})
        cursor.execute(
            f"select {', '.join(_quoted(c) for c in present)} "
            f"from {_quoted(catalog)}.{_quoted(TRINO_MARTS_SCHEMA)}.{_quoted(mart)}"
        )
        rows = cursor.fetchall()
    # Trino's client gives Python values; Arrow infers the types (Decimal: decimal128)
    frame = pd.DataFrame.from_records(rows, columns=present)
    return pa.Table.from_pandas(frame, preserve_index=False)
