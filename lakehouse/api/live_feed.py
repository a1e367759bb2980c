"""The live view's numbers: the last hours of orders, revenue and stock-outs, read from
silver and pushed to every connected socket as soon as silver moves.

Why silver and not the published marts: the live view must follow the operational
database within seconds of its commit, and the marts move only when dbt builds and the
gate publishes. So this module is the one consumer allowed to read silver (the issue
asks for a latency below the dbt build). It reads the current state the lander merged
(never bronze, the source or the gate), computes only the page's few aggregates, and
writes nothing. Its numbers are unaudited: the marts stay the numbers of record.

One :class:`LiveHub` per process polls the Delta versions of the silver tables it reads
(an incremental read of each table's log: about 0.1 ms a table on local files) while at
least one socket is connected, recomputes only when a version moved (or every
``HEARTBEAT_SECONDS``, so a window on the wall clock slides), and hands each socket the
snapshot of its scope. With no socket connected, nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from prometheus_client import Counter, Gauge

from lakehouse.lake import delta, silver
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api.live")

# the silver tables the view reads, and their columns it needs: orders with their lines,
# the client's region, stock
LIVE_COLUMNS = {
    "orders": ["order_id", "client_id", "status", "ordered_at", "_source_ts"],
    "order_item": ["order_id", "quantity", "unit_price", "discount_amount"],
    "client": ["client_id", "region"],
    "stock": ["quantity_on_hand", "reorder_point", "updated_at", "_source_ts"],
}
LIVE_TABLES = tuple(LIVE_COLUMNS)
LIVE_KEYS = {  # their primary keys (the contracts'): silver's current state is by key
    "orders": ("order_id",),
    "order_item": ("order_item_id",),
    "client": ("client_id",),
    "stock": ("product_id", "warehouse_id"),
}
POLL_SECONDS = 0.5
# silver moved: wait until a poll this much later sees the same versions (at most
# SETTLE_MAX_SECONDS), so a lander's round, which commits one table after the other, is
# seen whole rather than an order without its lines
SETTLE_SECONDS, SETTLE_MAX_SECONDS = 0.15, 1.5
# a snapshot at least this often: the window slides on the wall clock, and the page
# knows the socket is alive (it reconnects after a silence of 2.5 times this)
HEARTBEAT_SECONDS = 30.0
DEFAULT_HOURS, MAX_HOURS = 6, 48
# an order this far ahead of our clock still counts as "now" (the source's clock skew)
CLOCK_SKEW = timedelta(minutes=5)

SOCKETS = Gauge("lakehouse_live_sockets", "live view sockets connected (authenticated)")
RECOMPUTES = Counter("lakehouse_live_recomputes", "live view snapshots computed from silver")


class SilverWatch:
    """The silver tables of the view (each a base and its tail, ``lakehouse.lake.silver``),
    kept open and brought up to date incrementally (only the log entries since the last
    poll are read), and the columns the view needs of their current state, read again
    only from a table whose version moved. Not thread-safe: one caller at a time (the
    hub's lock)."""

    def __init__(self, settings: Settings) -> None:
        self._uris = {t: settings.table_uri("silver", t) for t in LIVE_TABLES}
        self._options = settings.lake_storage_options
        self._tables: dict[str, DeltaTable | None] = dict.fromkeys(LIVE_TABLES)
        self._tails: dict[str, DeltaTable | None] = dict.fromkeys(LIVE_TABLES)
        self._versions: dict[str, int] = {}
        self._read: dict[str, tuple[int, pa.Table]] = {}  # table -> (version, columns)

    def poll(self) -> dict[str, int]:
        """Each table's version (-1: no such table yet): the base's Delta version plus its
        tail's (each only grows, so their sum moves when either does)."""
        for name, uri in self._uris.items():
            base = self._tables[name] = self._update(self._tables[name], uri)
            tail = self._tails[name] = self._update(self._tails[name], silver.tail_uri(uri))
            self._versions[name] = (
                -1 if base is None else base.version() + (0 if tail is None else tail.version() + 1)
            )
        return dict(self._versions)

    def _update(self, table: DeltaTable | None, uri: str) -> DeltaTable | None:
        if table is None:
            return delta.open_table(uri, self._options)
        table.update_incremental()
        return table

    def frames(self) -> dict[str, pa.Table | None]:
        """The view's columns of each table's current state as of the last poll (None: no
        such table yet)."""
        frames: dict[str, pa.Table | None] = {}
        for name, table in self._tables.items():
            if table is None:
                frames[name] = None
                continue
            version = self._versions[name]
            cached = self._read.get(name)
            if cached is None or cached[0] != version:
                columns = silver.read_current(
                    self._uris[name], LIVE_KEYS[name], self._options, LIVE_COLUMNS[name]
                )
                if columns is None:
                    frames[name] = None
                    continue
                cached = self._read[name] = (version, columns)
            frames[name] = cached[1]
        return frames


@dataclass(frozen=True)
class Window:
    """``hours`` hour buckets, the last one holding ``end``. ``clock`` says where ``end``
    comes from: ``wall`` (now: the business's newest order is recent) or ``data`` (the
    newest order's time: a replayed or simulated source whose clock is not ours)."""

    start: datetime
    stop: datetime  # exclusive: the end of the last bucket
    end: datetime
    clock: str

    @classmethod
    def of(cls, newest: datetime | None, now: datetime, hours: int) -> Window:
        if newest is None or now - timedelta(hours=hours) <= newest <= now + CLOCK_SKEW:
            end, clock = max(now, newest or now), "wall"
        else:
            end, clock = newest, "data"
        last = end.replace(minute=0, second=0, microsecond=0)
        return cls(last - timedelta(hours=hours - 1), last + timedelta(hours=1), end, clock)

    def hours(self) -> list[datetime]:
        n = int((self.stop - self.start) / timedelta(hours=1))
        return [self.start + timedelta(hours=i) for i in range(n)]


Key = tuple[str | None, int]  # a snapshot's scope (None: the whole business) and hours


def compute(
    frames: dict[str, pa.Table | None], keys: Iterable[Key], now: datetime | None = None
) -> dict[Key, dict[str, Any]]:
    """The snapshot of each of ``keys`` over the same tables (one DuckDB connection: its
    start costs more than a scope's queries)."""
    now = (now or datetime.now(UTC)).replace(tzinfo=None)  # the source's times are UTC
    with duckdb.connect() as db:
        db.execute("set TimeZone = 'UTC'")
        db.execute("set threads = 1")  # small in-memory tables: threads cost more
        for name, frame in frames.items():
            if frame is not None:
                db.register(name, frame)
        missing = [t for t, f in frames.items() if f is None]
        return {key: _snapshot(db, missing, *key, now) for key in keys}


def _snapshot(
    db: duckdb.DuckDBPyConnection, missing: list[str], region: str | None, hours: int, now: datetime
) -> dict[str, Any]:
    """One scope over the last ``hours``: orders placed (cancelled ones left out) and their
    lines' net value per hour, by the orders' own time; for the whole business, the stock
    rows at zero now and per hour the stock-outs that began then and still last. A region
    sees only the orders of its clients (their region in silver now), and no stock: stock
    is no region's to read, as in the marts."""
    has_orders = not {"orders", "order_item"} & set(missing) and (
        region is None or "client" not in missing
    )
    scoped = _scoped_orders(region) if has_orders else None
    newest = db.execute(f"select max(ordered_at) from {scoped}").fetchone() if scoped else None
    window = Window.of(newest[0] if newest else None, now, hours)
    by_hour: dict[datetime, tuple[int, float]] = {}
    source_ts = None
    if scoped is not None:
        rows = db.execute(_ORDERS_BY_HOUR.format(scoped=scoped), _bounds(window)).fetchall()
        by_hour = {hour: (int(n), float(value)) for hour, n, value, _ in rows}
        source_ts = max((r[3] for r in rows if r[3] is not None), default=None)
    stock = None
    if region is None and "stock" not in missing:
        stock = _stock(db, window)
        source_ts = max(filter(None, [source_ts, stock["newest_commit"]]), default=None)
    slots = window.hours()
    counts = [by_hour.get(h, (0, 0.0))[0] for h in slots]
    values = [round(by_hour.get(h, (0, 0.0))[1], 2) for h in slots]
    began = [None if stock is None else stock["began"].get(h, 0) for h in slots]
    buckets = [
        {"hour": _iso(h), "orders": n, "revenue": v, "new_stock_outs": b}
        for h, n, v, b in zip(slots, counts, values, began, strict=True)
    ]
    RECOMPUTES.inc()
    return {
        "type": "snapshot",
        "scope": region or "all",
        "hours": hours,
        "clock": window.clock,
        "window": {"start": _iso(window.start), "end": _iso(window.end)},
        "buckets": buckets,
        "totals": {
            "orders": sum(counts),
            "revenue": round(sum(values), 2),
            "stock_outs": None if stock is None else stock["out"],
            "low_stock": None if stock is None else stock["low"],
        },
        "source_commit_at": _iso(source_ts),
        "computed_at": _iso(now),
        "missing": missing,
    }


def _scoped_orders(region: str | None) -> str:
    if region is None:
        return "orders"
    # a region name is checked by the settings (REGION_NAME_PATTERN); quoted all the same
    quoted = region.replace("'", "''")
    return (
        f"(select o.* from orders o join client c on c.client_id = o.client_id "
        f"where c.region = '{quoted}')"
    )


_ORDERS_BY_HOUR = """
with placed as (
    select order_id, date_trunc('hour', ordered_at) as hour, _source_ts
    from {scoped}
    where ordered_at >= $start and ordered_at < $stop and status <> 'cancelled'
),
order_values as (
    select order_id, sum(quantity * unit_price - discount_amount) as net_value
    from order_item
    where order_id in (select order_id from placed)
    group by order_id
)
select
    placed.hour,
    count(*) as orders,
    coalesce(sum(order_values.net_value), 0)::double as revenue,
    max(placed._source_ts) as newest_commit
from placed
left join order_values on order_values.order_id = placed.order_id
group by placed.hour
"""


def _bounds(window: Window) -> dict[str, datetime]:
    return {"start": window.start, "stop": window.stop}


def _stock(db: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    now = db.execute(
        "select count(*) filter (where quantity_on_hand <= 0), "
        "count(*) filter (where quantity_on_hand <= reorder_point), max(_source_ts) from stock"
    ).fetchone()
    began = db.execute(
        "select date_trunc('hour', updated_at::timestamp) as hour, count(*) from stock "
        "where quantity_on_hand <= 0 and updated_at::timestamp >= $start "
        "and updated_at::timestamp < $stop group by hour",
        _bounds(window),
    ).fetchall()
    out, low, newest_commit = now if now else (0, 0, None)
    return {
        "out": int(out),
        "low": int(low),
        "began": {h: int(n) for h, n in began},
        "newest_commit": newest_commit,
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


@dataclass(eq=False)
class Subscriber:
    """One socket's scope and window; the newest snapshot for it waits in ``inbox`` (a
    slow socket skips to the newest, it never holds the others up)."""

    region: str | None
    hours: int
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1))

    @property
    def key(self) -> Key:
        return self.region, self.hours

    def offer(self, snapshot: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            self.inbox.get_nowait()
        self.inbox.put_nowait(snapshot)


class LiveHub:
    """The one watcher of a process: polls silver while sockets are connected, computes
    one snapshot per (scope, hours) wanted when silver moved, and offers it to each
    socket of that scope."""

    def __init__(self, settings: Settings, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._watch = SilverWatch(settings)
        self._subscribers: set[Subscriber] = set()
        self._versions: dict[str, int] | None = None
        self._computed = 0.0  # monotonic time of the last computation
        self._snapshots: dict[Key, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None  # the last failure logged, until a success

    @property
    def watching(self) -> bool:
        """Whether the watcher runs (only while a socket is connected)."""
        return self._task is not None and not self._task.done()

    async def subscribe(self, region: str | None, hours: int) -> Subscriber:
        """A new socket's subscription, its first snapshot already in its inbox."""
        self._bind_loop()
        subscriber = Subscriber(region, hours)
        self._subscribers.add(subscriber)
        SOCKETS.set(len(self._subscribers))
        await self._deliver(subscriber)
        if not self.watching:
            self._task = asyncio.create_task(self._watch_silver(), name="live-silver-watch")
        return subscriber

    async def change(self, subscriber: Subscriber, hours: int) -> None:
        """The socket asked for another window."""
        subscriber.hours = hours
        await self._deliver(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        SOCKETS.set(len(self._subscribers))
        if not self._subscribers and self._task is not None:
            self._task.cancel()  # idle: nothing polls
            self._task = None
            self._snapshots.clear()

    def _bind_loop(self) -> None:
        """A lock and a task belong to one event loop (tests run an app in several)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._lock, self._task = loop, asyncio.Lock(), None

    async def _deliver(self, subscriber: Subscriber) -> None:
        try:
            async with self._lock:
                await self._refresh()
                snapshot = self._snapshots.get(subscriber.key)
                if snapshot is None:
                    snapshots = await asyncio.to_thread(
                        lambda: compute(self._watch.frames(), [subscriber.key])
                    )
                    snapshot = self._snapshots[subscriber.key] = snapshots[subscriber.key]
        except Exception as exc:  # the watcher tries again at its next poll
            self._problem([subscriber], exc)
            return
        subscriber.offer(_stamped(snapshot, self._versions))

    async def _watch_silver(self) -> None:
        while self._subscribers:
            await asyncio.sleep(self.poll_seconds)
            try:
                async with self._lock:
                    await self._refresh()
            except Exception as exc:  # keep watching: the next poll may read it again
                self._problem(list(self._subscribers), exc)

    async def _refresh(self) -> None:
        """Poll the versions; when one moved (or the heartbeat is due) compute every wanted
        snapshot again and offer each socket its own. Under the lock."""
        versions = await asyncio.to_thread(self._watch.poll)
        due = time.monotonic() - self._computed >= HEARTBEAT_SECONDS
        if versions == self._versions and not due:
            return
        if self._versions is not None and versions != self._versions:
            # a lander's round commits one table after the other: wait for its end
            settle_until = time.monotonic() + SETTLE_MAX_SECONDS
            while time.monotonic() < settle_until:
                await asyncio.sleep(SETTLE_SECONDS)
                again = await asyncio.to_thread(self._watch.poll)
                if again == versions:
                    break
                versions = again
        wanted = {s.key for s in self._subscribers}
        snapshots = await asyncio.to_thread(lambda: compute(self._watch.frames(), wanted))
        # only now: a computation that failed is tried again at the next poll
        self._versions, self._computed = versions, time.monotonic()
        self._snapshots, self._failure = snapshots, None
        for subscriber in list(self._subscribers):
            snapshot = self._snapshots.get(subscriber.key)
            if snapshot is not None:
                subscriber.offer(_stamped(snapshot, versions))

    def _problem(self, subscribers: list[Subscriber], exc: Exception) -> None:
        """Tell the sockets silver could not be read (they keep their last numbers); the
        log says it once, not at every poll."""
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        if detail != self._failure:
            log.error("live view: reading silver failed: %s", detail, exc_info=exc)
            self._failure = detail
        for subscriber in subscribers:
            subscriber.offer({"type": "problem", "detail": detail})


def _stamped(snapshot: dict[str, Any], versions: dict[str, int] | None) -> dict[str, Any]:
    return {**snapshot, "silver_versions": versions or {}}
