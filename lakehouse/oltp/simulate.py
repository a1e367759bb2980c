"""Run the demo business live against the operational database.

The shop of ``lakehouse.generate.business`` hands its transactions to a recorder; here the
recorder is the database: each transaction's changes become INSERT/UPDATE/DELETE
statements committed as one database transaction, paced to the requested rate. The rows'
timestamps are the business's simulated time, which runs as fast as the pace allows.

On an empty database the shop's initial world is bulk-loaded first (COPY). On a database
that already holds a shop, the simulation carries on from its rows: ids continue after the
highest ones and simulated time resumes on the day after the newest change.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakehouse.contracts import load_contracts
from lakehouse.exceptions import OltpError
from lakehouse.generate.business import Business
from lakehouse.generate.wire import to_python, to_wire
from lakehouse.oltp.client import connect

if TYPE_CHECKING:
    import psycopg

    from lakehouse.contracts import Contract
    from lakehouse.generate.debezium import Row, Transaction
    from lakehouse.settings import Settings

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
HORIZON_DAYS = 3650  # the business's growth curve spans ten simulated years per run
_LOCK_ID = 0x5348_4F50  # advisory lock: one simulator per database ("SHOP")
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class SimulateParams:
    tps: float = 10.0  # transactions per second; 0 means as fast as the database goes
    duration: float | None = 60.0  # seconds of wall-clock time
    transactions: int | None = None  # or stop after this many transactions
    until: date | None = None  # or stop at this business date (a resumed run may do nothing)
    horizon_days: int = HORIZON_DAYS  # the span of the business's growth curve
    seed: int = 42
    clients: int = 1000  # the initial world, when the database is empty
    products: int = 300
    orders_per_day: float | None = None  # default 0.13 per client, as the generator
    start_date: date = date(2024, 1, 1)  # simulated date of a fresh shop's first day

    def __post_init__(self) -> None:
        if self.tps < 0:
            raise OltpError("--tps must be positive (or 0 for as fast as possible)")
        if self.duration is None and self.transactions is None and self.until is None:
            raise OltpError("give a --duration, a number of --transactions or a --days")
        if self.duration is not None and self.duration <= 0:
            raise OltpError("--duration must be positive")
        if self.transactions is not None and self.transactions < 1:
            raise OltpError("--transactions must be positive")
        if self.clients < 1 or self.products < 10:
            raise OltpError("simulate needs at least 1 client and 10 products")


@dataclass
class SimulateSummary:
    resumed: bool  # carried on from rows already in the database
    loaded: dict[str, int] = field(default_factory=dict)  # rows of the initial world
    transactions: int = 0
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, op) -> n
    seconds: float = 0.0
    first_commit_us: int | None = None  # simulated business time
    last_commit_us: int | None = None
    interrupted: bool = False  # stopped by Ctrl-C
    business: Business | None = field(default=None, repr=False)  # its final state

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        by_table: dict[str, dict[str, int]] = {}
        for (table, op), n in sorted(self.changes.items()):
            by_table.setdefault(table, {})[op] = n
        return {
            "resumed": self.resumed,
            "interrupted": self.interrupted,
            "loaded": self.loaded,
            "transactions": self.transactions,
            "changes": by_table,
            "seconds": round(self.seconds, 3),
            "tps": round(self.tps, 1),
            "simulated_from": _iso(self.first_commit_us),
            "simulated_to": _iso(self.last_commit_us),
        }


Progress = Callable[[SimulateSummary], None]


class _Finished(Exception):
    """Raised by the sink right after the last transaction it may commit."""


# -- the sink -----------------------------------------------------------------------------


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
        from psycopg import sql

        self.conn = conn
        self.contracts = contracts
        self.params = params
        self.summary = summary
        self.load_snapshot = load_snapshot
        self.on_progress = on_progress
        self._types = {t: {c.name: c.type for c in k.columns} for t, k in contracts.items()}
        self._sql: dict[tuple[str, str, tuple[str, ...]], bytes] = {}
        self._ident = sql.Identifier
        self._interval = 1 / params.tps if params.tps > 0 else 0.0
        self._started = time.monotonic()
        self._deadline = None if params.duration is None else self._started + params.duration
        self._base = self._started  # the pace's origin, moved on after a stall
        self._paced = 0  # transactions since the origin
        self._last_report = 0.0
        self._until_us = (
            None if params.until is None else (params.until - _EPOCH_DAY).days * 86_400_000_000
        )
        self._columns = {
            t: f'"{t}" (' + ", ".join(f'"{n}"' for n in types) + ")"
            for t, types in self._types.items()
        }
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
        self._started = self._base = time.monotonic()  # pace the transactions, not the load
        if self.params.duration is not None:
            self._deadline = self._started + self.params.duration

    def commit(self, tx: Transaction) -> None:
        """One database transaction per business transaction, at the requested pace."""
        if not tx.changes:
            return
        if self._until_us is not None and tx.commit_us >= self._until_us:
            raise _Finished
        if self._interval:
            self._pace()
            with self.conn.transaction():
                with self.conn.pipeline():  # one round trip for the statements
                    cursors = [(change, self._execute(change)) for change in tx.changes]
                self._check(cursors)
        else:
            self._send(tx)
        s = self.summary
        s.transactions += 1
        for change in tx.changes:
            s.changes[(change.table, change.op)] += 1
        if s.first_commit_us is None:
            s.first_commit_us = tx.commit_us
        s.last_commit_us = tx.commit_us
        now = time.monotonic()
        s.seconds = now - self._started
        if self.on_progress is not None and now - self._last_report >= 0.2:
            self._last_report = now
            self.on_progress(s)
        if self.params.transactions is not None and s.transactions >= self.params.transactions:
            raise _Finished
        if self._deadline is not None and self._next_slot(now) >= self._deadline:
            raise _Finished

    def close(self) -> None:
        """Commit the transactions still waiting to be sent, and check them."""
        self._flush()

    def _send(self, tx: Transaction) -> None:
        """Unpaced: transactions are sent many at a time, as one simple query holding
        ``begin; ...; commit;`` for each of them, with the values as SQL literals. Each is
        still its own database transaction; this only saves round trips."""
        self._batch.append("begin")
        for change in tx.changes:
            statement = self._render(change)
            if statement is not None:
                self._batch.append(statement)
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
            results: list[tuple[Any, int]] = []
            while True:
                status = cur.statusmessage or ""
                if status.startswith(("UPDATE", "DELETE", "INSERT")):
                    results.append((changes[len(results)], int(status.rsplit(" ", 1)[1])))
                if not cur.nextset():
                    break
        for change, count in results:
            if count != 1:
                raise OltpError(
                    f"the database no longer matches the simulation: {change.op} of "
                    f"{change.table} {change.key} touched {count} rows; is another "
                    "program writing to it?"
                )

    def _render(self, change: Any) -> str | None:
        table, types = change.table, self._types[change.table]
        key = self.contracts[table].primary_key
        where = " and ".join(f'"{k}" = {_literal(types[k], change.key[k])}' for k in key)
        if change.op == "c":
            row = change.after
            values = ", ".join(_literal(t, row[n]) for n, t in types.items())
            return f"insert into {self._columns[table]} values ({values})"
        if change.op == "d":
            return f'delete from "{table}" where {where}'
        before, after = change.before, change.after
        changed = [n for n in types if n not in key and before.get(n) != after.get(n)]
        if not changed:
            return None
        sets = ", ".join(f'"{n}" = {_literal(types[n], after[n])}' for n in changed)
        return f'update "{table}" set {sets} where {where}'

    @staticmethod
    def _check(cursors: list[tuple[Any, psycopg.Cursor[Any] | None]]) -> None:
        for change, cur in cursors:
            if change.op != "c" and cur is not None and cur.rowcount != 1:
                raise OltpError(
                    f"the database no longer matches the simulation: {change.op} of "
                    f"{change.table} {change.key} touched {cur.rowcount} rows; is another "
                    "program writing to it?"
                )

    # statements ---------------------------------------------------------------------

    def _execute(self, change: Any) -> psycopg.Cursor[Any] | None:
        table, types = change.table, self._types[change.table]
        key = self.contracts[table].primary_key
        if change.op == "c":
            row = change.after
            names = tuple(types)
            statement = self._statement(table, "c", names)
            return self.conn.execute(statement, [to_python(types[n], row[n]) for n in names])
        where = [to_python(types[k], change.key[k]) for k in key]
        if change.op == "d":
            return self.conn.execute(self._statement(table, "d", ()), where)
        before, after = change.before, change.after
        changed = tuple(n for n in types if n not in key and before.get(n) != after.get(n))
        if not changed:
            return None
        values = [to_python(types[n], after[n]) for n in changed]
        return self.conn.execute(self._statement(table, "u", changed), [*values, *where])

    def _statement(self, table: str, op: str, names: tuple[str, ...]) -> bytes:
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


# -- the run ------------------------------------------------------------------------------


def simulate(
    settings: Settings, params: SimulateParams, *, on_progress: Progress | None = None
) -> SimulateSummary:
    """Run the shop against the database until the duration or transaction budget is spent."""
    import psycopg

    contracts = load_contracts(settings.contracts_dir)
    missing = [t for t in LOAD_ORDER if t not in contracts]
    if missing:
        raise OltpError(
            f"the simulator needs a data contract for {', '.join(missing)} in "
            f"{settings.contracts_dir}"
        )
    with connect(settings, autocommit=True) as conn:
        _check_schema(conn, contracts)
        if not params.tps:
            # as fast as it goes: commits do not wait for their WAL flush (this session
            # only; a crash could lose the last instants, never consistency)
            conn.execute("set synchronous_commit = off")
        locked = conn.execute("select pg_try_advisory_lock(%s)", (_LOCK_ID,)).fetchone()
        if not locked or not locked[0]:
            raise OltpError("another `lakehouse simulate` is running against this database")
        rng = random.Random(params.seed)
        counts = {t: _count(conn, t) for t in LOAD_ORDER}
        resumed = any(counts.values())
        world: dict[str, list[Row]] = {}
        start = params.start_date
        if resumed:
            for table in ("transporter", "client", "product"):
                if not counts[table]:
                    raise OltpError(
                        f"the database holds part of a shop but no {table}: "
                        "empty its tables (or recreate it) to start a fresh one"
                    )
            world = {t: _read_table(conn, contracts[t]) for t in LOAD_ORDER}
            start = _day_after_newest(conn)
        summary = SimulateSummary(resumed=resumed)
        sink = DatabaseRecorder(
            conn,
            contracts,
            params,
            summary,
            load_snapshot=not resumed,
            on_progress=on_progress,
        )
        if resumed:
            # a new stream of randomness for every resumption, still fixed by the seed
            rng = random.Random(f"{params.seed}/{start.isoformat()}")
            business = Business.resume(
                rng=rng,
                recorder=sink,  # type: ignore[arg-type]
                world=world,
                days=params.horizon_days,
                start=start,
                orders_per_day=_order_rate(params, counts["client"]),
            )
        else:
            business = Business(
                rng=rng,
                recorder=sink,  # type: ignore[arg-type]
                clients=params.clients,
                products=params.products,
                days=params.horizon_days,
                start=start,
                snapshot_day=0,
                orders_per_day=_order_rate(params, params.clients),
            )
        summary.business = business
        try:
            if params.until is None or start < params.until:
                business.run()
        except _Finished:
            pass
        except KeyboardInterrupt:  # Ctrl-C: the open transaction rolls back, the rest stays
            summary.interrupted = True
        except psycopg.Error as exc:
            raise OltpError(
                f"the database refused a simulated transaction: {str(exc).strip().splitlines()[0]}"
            ) from None
        finally:
            try:
                sink.close()
            except psycopg.Error as exc:
                raise OltpError(
                    "the database refused a simulated transaction: "
                    f"{str(exc).strip().splitlines()[0]}"
                ) from None
            summary.seconds = time.monotonic() - sink._started
    if on_progress is not None:
        on_progress(summary)
    return summary


def _order_rate(params: SimulateParams, clients: int) -> float:
    return params.orders_per_day if params.orders_per_day is not None else 0.13 * clients


def _check_schema(conn: psycopg.Connection, contracts: dict[str, Contract]) -> None:
    rows = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'public'"
    ).fetchall()
    present = {r[0] for r in rows}
    missing = [t for t in LOAD_ORDER if t not in present]
    if missing:
        raise OltpError(
            f"the database has no table {', '.join(missing)}: apply the shop's schema with "
            "`lakehouse oltp up` (or `lakehouse oltp migrate` on a database of your own)"
        )


def _count(conn: psycopg.Connection, table: str) -> int:
    from psycopg import sql

    row = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _read_table(conn: psycopg.Connection, contract: Contract) -> list[Row]:
    """Every row of a table, in key order, with values as the business keeps them."""
    from psycopg import sql

    names = contract.column_names
    types = [c.type for c in contract.columns]
    query = sql.SQL("select {} from {} order by {}").format(
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.Identifier(contract.table),
        sql.SQL(", ").join(map(sql.Identifier, contract.primary_key)),
    )
    with conn.cursor() as cur:
        cur.execute(query)
        return [
            {n: to_wire(t, v) for n, t, v in zip(names, types, record, strict=True)}
            for record in cur
        ]


def _day_after_newest(conn: psycopg.Connection) -> date:
    """Simulated time resumes on the day after the newest change in the database."""
    newest = conn.execute(
        "select max(t) from ("
        + " union all ".join(f"select max(updated_at) as t from {t}" for t in LOAD_ORDER)
        + ") as newest"
    ).fetchone()
    if not newest or newest[0] is None:
        raise OltpError("the database's rows carry no updated_at: cannot tell where to resume")
    stamp: datetime = newest[0]
    return stamp.astimezone(UTC).date() + timedelta(days=1)


def _literal(ctype: str, value: Any) -> str:
    """A wire value as an SQL literal (``standard_conforming_strings`` is on: only quotes
    need doubling)."""
    if value is None:
        return "null"
    if ctype in ("smallint", "int", "bigint", "double") or ctype.startswith("decimal"):
        return str(value)
    if ctype == "boolean":
        return "true" if value else "false"
    if ctype == "timestamp":
        return f"'{(_EPOCH + value * _US).isoformat()}'"
    if ctype == "date":
        return f"'{(_EPOCH_DAY + timedelta(days=value)).isoformat()}'"
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + us * _US).isoformat()
