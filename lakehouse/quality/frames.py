"""Tables as pandas DataFrames, for the expectation checks (Great Expectations' pandas
engine): a Delta table of the lake, or a mart of the build area (read through the
warehouse port, on the profile's engine).

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
from lakehouse.lake.delta import open_table
from lakehouse.settings import Settings
from lakehouse.warehouse import connect


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
    # opened and closed at once: dbt needs the DuckDB build file to itself
    with connect(settings, "build") as build:
        present = set(build.columns(mart))
        table = build.read_mart(mart, [c for c in columns if c in present])
    return to_pandas(table)


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
