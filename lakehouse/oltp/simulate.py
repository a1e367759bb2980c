"""Run the demo business live against the operational database.

The shop of ``lakehouse.generate.business`` hands its transactions to a recorder; here the
recorder is the database (``lakehouse.oltp.writer``): each transaction's changes become
INSERT/UPDATE/DELETE statements committed as one database transaction, paced to the
requested rate. The rows' timestamps are the business's simulated time, which runs as
fast as the pace allows.

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
from lakehouse.oltp.writer import LOAD_ORDER, DatabaseRecorder, Finished

if TYPE_CHECKING:
    import psycopg

    from lakehouse.contracts import Contract
    from lakehouse.generate.debezium import Row
    from lakehouse.settings import Settings

HORIZON_DAYS = 3650  # the business's growth curve spans ten simulated years per run
_LOCK_ID = 0x5348_4F50  # advisory lock: one simulator per database ("SHOP")


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
        except Finished:
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
            summary.seconds = time.monotonic() - sink.started
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


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return to_python("timestamp", us).replace(tzinfo=UTC).isoformat()
