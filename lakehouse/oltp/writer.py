"""The simulator's one SQL writer: each business transaction as one database transaction.

The shop of ``lakehouse.generate.business`` hands its transactions to a recorder; here the
recorder is the database. A change becomes one INSERT, UPDATE or DELETE, its values turned
from the business's wire values (Debezium's JSON, ``lakehouse.generate.wire``) into
Python's. Paced, a transaction is one round trip of parameterised statements; unpaced,
the same statements are bound as text on our side and many transactions go in one
simple query. The world before the first day is bulk-loaded with COPY.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import OltpError
from lakehouse.generate.wire import to_python, to_wire

if TYPE_CHECKING:
    import psycopg

    from lakehouse.contracts import Contract
    from lakehouse.generate.debezium import Row, Transaction
    from lakehouse.oltp.simulate import Progress, SimulateParams, SimulateSummary

# parents before children, for loading and for the foreign keys
LOAD_ORDER = (
    "transporter",
    "client",
    "product",
    "promotion",
    "stock",
    "orders",
    "order_item",
    "sale",
)


class Finished(Exception):
    """Raised by the sink right after the last transaction it may commit."""


class DatabaseRecorder:
    """A ``Recorder`` for ``Business`` that commits each transaction to PostgreSQL."""

    def __init__(
        self,
        conn: psycopg.Connection,
        contracts: dict[str, Contract],
        params: SimulateParams,
        summary: SimulateSummary,
        *,
        load_snapshot: bool,
        on_progress: Progress | None = None,
    ) -> None:
        import psycopg

        self.conn = conn
        self.contracts = contracts
        self.params = params
        self.summary = summary
        self.load_snapshot = load_snapshot
        self.on_progress = on_progress
        self._types = {t: {c.name: c.type for c in k.columns} for t, k in contracts.items()}
        self._sql: dict[tuple[str, str, tuple[str, ...]], bytes] = {}
        # unpaced, the same statements are sent as text, their values bound on our side
        self._as_text = psycopg.ClientCursor(conn)
        self._interval = 1 / params.tps if params.tps > 0 else 0.0
        self.started = time.monotonic()
        self._deadline = None if params.duration is None else self.started + params.duration
        self._base = self.started  # the pace's origin, moved on after a stall
        self._paced = 0  # transactions since the origin
        self._last_report = 0.0
        self._until_us = (
            None if params.until is None else to_wire("date", params.until) * 86_400_000_000
        )
        self._batch: list[str] = []  # statements not sent yet (unpaced)
        self._batched: list[Any] = []  # their changes, to check what each one touched

    # the Recorder interface ---------------------------------------------------------

    def key_of(self, table: str, row: Row) -> Row:
        return {k: row[k] for k in self.contracts[table].primary_key}

    def snapshot(self, tables: dict[str, list[Row]], ts_us: int) -> None:
        """The world before the first day: bulk-loaded into an empty database."""
        if not self.load_snapshot:
            return
        from psycopg import sql

        with self.conn.transaction(), self.conn.cursor() as cur:
            for table in LOAD_ORDER:
                rows = tables.get(table, [])
                contract = self.contracts[table]
                names = contract.column_names
                types = [self._types[table][n] for n in names]
                copy_sql = sql.SQL("copy {} ({}) from stdin").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
                )
                with cur.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(
                            [to_python(t, row[n]) for n, t in zip(names, types, strict=True)]
                        )
                self.summary.loaded[table] = len(rows)
        self.started = self._base = time.monotonic()  # pace the transactions, not the load
        if self.params.duration is not None:
            self._deadline = self.started + self.params.duration

    def commit(self, tx: Transaction) -> None:
        """One database transaction per business transaction, at the requested pace."""
        if not tx.changes:
            return
        if self._until_us is not None and tx.commit_us >= self._until_us:
            raise Finished
        statements = [(c, st) for c in tx.changes if (st := self._statement_of(c)) is not None]
        if self._interval:
            self._pace()
            with self.conn.transaction():
                with self.conn.pipeline():  # one round trip for the statements
                    cursors = [(c, self.conn.execute(*st)) for c, st in statements]
                for change, cur in cursors:
                    _check(change, cur.rowcount)
        else:
            self._send(statements)
        s = self.summary
        s.transactions += 1
        for change in tx.changes:
            s.changes[(change.table, change.op)] += 1
        if s.first_commit_us is None:
            s.first_commit_us = tx.commit_us
        s.last_commit_us = tx.commit_us
        now = time.monotonic()
        s.seconds = now - self.started
        if self.on_progress is not None and now - self._last_report >= 0.2:
            self._last_report = now
            self.on_progress(s)
        if self.params.transactions is not None and s.transactions >= self.params.transactions:
            raise Finished
        if self._deadline is not None and self._next_slot(now) >= self._deadline:
            raise Finished

    def close(self) -> None:
        """Commit the transactions still waiting to be sent, and check them."""
        self._flush()

    def _send(self, statements: list[tuple[Any, tuple[bytes, list[Any]]]]) -> None:
        """Unpaced: transactions are sent many at a time, as one simple query holding
        ``begin; ...; commit;`` for each of them, with the values bound as SQL literals.
        Each is still its own database transaction; this only saves round trips."""
        self._batch.append("begin")
        for change, (query, values) in statements:
            self._batch.append(self._as_text.mogrify(query, values))
            self._batched.append(change)
        self._batch.append("commit")
        if len(self._batch) >= 2048:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        text = ";\n".join(self._batch).encode()
        changes, self._batch, self._batched = self._batched, [], []
        with self.conn.cursor() as cur:
            cur.execute(text)
            done = 0
            while True:
                status = cur.statusmessage or ""
                if status.startswith(("UPDATE", "DELETE", "INSERT")):
                    _check(changes[done], int(status.rsplit(" ", 1)[1]))
                    done += 1
                if not cur.nextset():
                    break

    # statements ---------------------------------------------------------------------

    def _statement_of(self, change: Any) -> tuple[bytes, list[Any]] | None:
        """The statement of one change and its values, turned from the business's wire
        values into Python's (None for an update that changes nothing)."""
        table, types = change.table, self._types[change.table]
        key = self.contracts[table].primary_key
        if change.op == "c":
            row = change.after
            names = tuple(types)
            return self._sql_of(table, "c", names), [to_python(types[n], row[n]) for n in names]
        where = [to_python(types[k], change.key[k]) for k in key]
        if change.op == "d":
            return self._sql_of(table, "d", ()), where
        before, after = change.before, change.after
        changed = tuple(n for n in types if n not in key and before.get(n) != after.get(n))
        if not changed:
            return None
        values = [to_python(types[n], after[n]) for n in changed]
        return self._sql_of(table, "u", changed), [*values, *where]

    def _sql_of(self, table: str, op: str, names: tuple[str, ...]) -> bytes:
        cached = self._sql.get((table, op, names))
        if cached is not None:
            return cached
        from psycopg import sql

        ident = sql.Identifier
        key = self.contracts[table].primary_key
        where = sql.SQL(" and ").join(sql.SQL("{} = %s").format(ident(k)) for k in key)
        if op == "c":
            statement = sql.SQL("insert into {} ({}) values ({})").format(
                ident(table),
                sql.SQL(", ").join(map(ident, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )
        elif op == "u":
            statement = sql.SQL("update {} set {} where {}").format(
                ident(table),
                sql.SQL(", ").join(sql.SQL("{} = %s").format(ident(n)) for n in names),
                where,
            )
        else:
            statement = sql.SQL("delete from {} where {}").format(ident(table), where)
        text = statement.as_bytes(self.conn)
        self._sql[(table, op, names)] = text
        return text

    # pace ---------------------------------------------------------------------------

    def _next_slot(self, now: float) -> float:
        if not self._interval:
            return now
        return max(now, self._base + self._paced * self._interval)

    def _pace(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        due = self._base + self._paced * self._interval
        if now - due > 1.0:  # fell behind by more than a second: no burst to catch up
            self._base, self._paced, due = now, 0, now
        if due > now:
            time.sleep(due - now)
        self._paced += 1


def _check(change: Any, count: int) -> None:
    """A change touches exactly its row: else another program changed the database."""
    if count != 1:
        raise OltpError(
            f"the database no longer matches the simulation: {change.op} of "
            f"{change.table} {change.key} touched {count} rows; is another "
            "program writing to it?"
        )
