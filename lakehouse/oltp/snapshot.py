"""A read-only snapshot of the operational database, for comparing the lake with it.

Every table is read in one transaction, ``REPEATABLE READ`` and ``READ ONLY``: all see
the same committed state, and nothing can be written through it. Nothing is started
here: the caller makes sure the database is up (``Cluster.running``); when it is not,
opening the snapshot is one :class:`OltpError` line saying where it could not connect.

A table travels with ``COPY ... TO STDOUT (FORMAT csv)`` in the values Debezium sends
(dates as days and timestamps as microseconds since the epoch, intervals as ISO text,
everything else as PostgreSQL writes it), and is cast to the contract's lake types the
way the lander casts Debezium's JSON, so that both sides compare type for type.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pcsv

from lakehouse.exceptions import OltpError
from lakehouse.oltp.client import connect

if TYPE_CHECKING:
    import psycopg

    from lakehouse.contracts import Contract
    from lakehouse.settings import Settings


class SourceSnapshot:
    """The tables of the database as of the snapshot's instant."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        # the snapshot is taken by this first query; the database's clock after it: every
        # transaction the snapshot sees committed before ``taken_at``
        row = conn.execute("select clock_timestamp()").fetchone()
        assert row is not None
        self.taken_at: datetime = row[0]

    def read(self, contract: Contract) -> pa.Table:
        """The contract's columns of its table, in lake types (null where a column is gone
        from the source, as the lander lands it). A table that cannot be read is an
        :class:`OltpError`; the snapshot stays usable for the others."""
        import psycopg

        try:
            with self._conn.transaction():  # a savepoint: a failure spoils only one table
                return _read(self._conn, contract)
        except (psycopg.Error, pa.ArrowInvalid) as exc:
            where = f"{contract.schema}.{contract.table}"
            raise OltpError(f"cannot read {where} in the source: {str(exc).strip()}") from None


@contextmanager
def source_snapshot(settings: Settings) -> Iterator[SourceSnapshot]:
    """A read-only snapshot of the database of the settings, for the block."""
    import psycopg

    with connect(settings) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # the first statement opens the transaction whose snapshot every table shares
        conn.execute("set local time zone 'UTC'")
        conn.execute("set local extra_float_digits = 1")  # shortest exact floats
        yield SourceSnapshot(conn)
        conn.rollback()  # it wrote nothing: nothing to commit


def _read(conn: psycopg.Connection, contract: Contract) -> pa.Table:
    """One table with ``COPY ... TO STDOUT (FORMAT csv)``, parsed by Arrow: dates and
    timestamps travel as integers since the epoch, intervals as Debezium's ISO text,
    everything else as PostgreSQL writes it (which is what Debezium sends)."""
    from psycopg import sql

    relation = sql.Identifier(contract.schema, contract.table)
    catalog = conn.execute(
        "select a.attname, a.atttypid = 'interval'::regtype from pg_attribute a "
        "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped",
        [relation.as_string(conn)],
    ).fetchall()
    is_interval = {str(name): bool(flag) for name, flag in catalog}
    exprs: list[sql.Composable] = []
    read_types: dict[str, pa.DataType] = {}
    for i, column in enumerate(contract.columns):
        alias = f"c{i}"
        if column.name not in is_interval:  # gone from the source: the lander lands nulls
            exprs.append(sql.SQL("null"))
        else:
            exprs.append(_expression(column.type, column.name, is_interval[column.name]))
        read_types[alias] = _read_type(column.type, column.arrow_type)
    query = sql.SQL("copy (select {} from {}) to stdout (format csv)").format(
        sql.SQL(", ").join(exprs), relation
    )
    data = bytearray()
    with conn.cursor().copy(query) as copy:
        for chunk in copy:
            data += chunk
    names = list(read_types)
    if not data:
        raw = pa.schema([pa.field(n, t) for n, t in read_types.items()]).empty_table()
    else:
        raw = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types=read_types,
                # PostgreSQL's CSV writes NULL unquoted and an empty string as ""
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    return pa.Table.from_arrays(
        [
            _to_lake(raw.column(n), c.type, c.arrow_type)
            for n, c in zip(names, contract.columns, strict=True)
        ],
        names=contract.column_names,
    )


def _expression(ctype: str, name: str, is_interval: bool) -> psycopg.sql.Composable:
    from psycopg import sql

    col = sql.Identifier(name)
    if ctype == "date":
        return sql.SQL("({} - date '1970-01-01')").format(col)  # days since the epoch
    if ctype in ("timestamp", "timestamp_ms", "timestamptz"):
        # microseconds since the epoch, exact on every PostgreSQL version (extract
        # returned a double before 14): whole seconds, plus the microseconds in them
        return sql.SQL(
            "(extract(epoch from date_trunc('second', {c}))::bigint * 1000000"
            " + extract(microseconds from {c})::bigint % 1000000)"
        ).format(c=col)
    if is_interval:
        # Debezium's interval.handling.mode=string: P<y>Y<m>M<d>DT<h>H<m>M<s>S, seconds
        # without trailing zeros
        return sql.SQL(
            "('P' || extract(year from {c})::bigint || 'Y' || extract(month from {c})::bigint"
            " || 'M' || extract(day from {c})::bigint || 'DT' || extract(hour from {c})::bigint"
            " || 'H' || extract(minute from {c})::bigint || 'M'"
            " || trim_scale(extract(second from {c})::numeric) || 'S')"
        ).format(c=col)
    return col


def _read_type(ctype: str, lake: pa.DataType) -> pa.DataType:
    """Arrow type the CSV column is read as."""
    if ctype == "date":
        return pa.int32()
    if ctype.startswith("timestamp"):
        return pa.int64()
    if pa.types.is_decimal(lake):
        return pa.string()  # cast as the lander casts Debezium's decimal strings
    return lake


def _to_lake(values: pa.ChunkedArray, ctype: str, lake: pa.DataType) -> pa.ChunkedArray:
    if ctype == "timestamp_ms":  # read as microseconds, like the other timestamps
        values = values.cast(pa.timestamp("us"))
    return values.cast(lake)
