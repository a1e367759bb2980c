"""Simulate the demo shop day by day and hand every transaction to the recorder.

The simulation keeps each table's rows exactly as Debezium's JSON carries them (decimals
as strings, ``timestamp`` as microseconds, ``timestamptz`` as ISO strings, dates as
days), so what is emitted and what ends up as the ground truth are the same values.
Rows are never modified in place: an update stores a new dict, which keeps the ``before``
images of not-yet-streamed transactions intact.

Longer than 400 lines on purpose: ``Business`` is one state machine. Its rows, clock,
schedule and single random stream are shared by every event of the shop, and the order of
the random draws is what makes a seed reproduce the same history; split into modules,
that order would be spread over them.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate, count
from typing import Any

import numpy as np

from lakehouse.generate import catalog as cat
from lakehouse.generate.debezium import Change, Recorder, Row, Transaction

Sampler = tuple[list[int], list[float]]  # ids and their cumulative weights
Group = tuple[str, int]  # clients who buy alike: a segment and a taste


@dataclass(frozen=True)
class DayDemand:
    """One day's demand, as the orders of the day are drawn from it: a group's product
    weights are its segment's weights times the products' affinity with its taste."""

    day: date
    order_rate: float  # the expected number of orders
    product_ids: np.ndarray  # the active products, in the samplers' order
    segment_weights: dict[str, np.ndarray]  # popularity, preference, season, promotion, price
    affinity: np.ndarray  # products x tastes
    client_ids: np.ndarray  # the clients who can order, and for each one:
    client_segments: np.ndarray  # its segment's index in catalog.SEGMENTS
    client_tastes: np.ndarray
    client_activity: np.ndarray  # its odds of placing an order relative to the others

    def weights(self, group: Group) -> np.ndarray:
        segment, taste = group
        return self.segment_weights[segment] * self.affinity[:, taste]

    def group_activity(self) -> dict[Group, float]:
        """Summed activity of the clients who can order, per group."""
        totals: dict[Group, float] = {}
        for s, t, a in zip(
            self.client_segments.tolist(),
            self.client_tastes.tolist(),
            self.client_activity.tolist(),
            strict=True,
        ):
            group = (cat.SEGMENTS[s], t)
            totals[group] = totals.get(group, 0.0) + a
        return totals


# Told each day's demand before its orders are drawn.
DemandHook = Callable[[DayDemand], None]

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000

TABLES = ("transporter", "client", "product", "promotion", "stock", "orders", "order_item", "sale")
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "transporter": ("transporter_id",),
    "client": ("client_id",),
    "product": ("product_id",),
    "promotion": ("promotion_id",),
    "stock": ("product_id", "warehouse_id"),
    "orders": ("order_id",),
    "order_item": ("order_item_id",),
    "sale": ("sale_id",),
}


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


class _Clock:
    """ISO-8601 strings for microsecond timestamps, with the date part cached."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def iso(self, us: int) -> str:
        day, rem = divmod(us, DAY_US)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        seconds, micros = divmod(rem, 1_000_000)
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        return f"{prefix}T{h:02d}:{m:02d}:{s:02d}.{micros:06d}Z"


class Business:
    """The shop: its tables, its customers' behaviour, and the order life cycle."""

    def __init__(
        self,
        *,
        rng: random.Random,
        recorder: Recorder,
        clients: int,
        products: int,
        days: int,
        start: date,
        snapshot_day: int,
        orders_per_day: float,
        world: dict[str, list[Row]] | None = None,
        on_demand: DemandHook | None = None,
    ) -> None:
        self.rng = rng
        self.on_demand = on_demand
        self.rec = recorder
        self.days = days
        self.snapshot_day = snapshot_day
        self.orders_per_day = orders_per_day
        self.start_us = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self.start_us *= 1_000_000
        self.start_day = (start - date(1970, 1, 1)).days
        self.clock = _Clock()
        self.tables: dict[str, dict[tuple[Any, ...], Row]] = {t: {} for t in TABLES}
        self._ids = {t: count(1) for t in TABLES}
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = count()
        # behaviour that is not a column
        self.activity: dict[int, float] = {}  # client_id -> relative order rate
        self.taste: dict[int, int] = {}  # client_id -> its taste, 0 .. TASTES - 1
        self.affinity: dict[int, list[float]] = {}  # product_id -> its affinity per taste
        self.orders_of: dict[int, int] = {}  # client_id -> orders placed
        self.popularity: dict[int, float] = {}  # product_id -> relative demand
        self.launch_price: dict[int, int] = {}  # product_id -> first price in cents
        self.open_lines: dict[int, list[int]] = {}  # order_id -> its order_item_ids, until paid
        self._client_sampler: Sampler = ([], [])
        self._product_sampler: dict[Group, Sampler] = {}
        self.resumed = world is not None
        if world is None:
            self._init_world(clients, products)
        else:
            self._adopt(world)

    @classmethod
    def resume(
        cls,
        *,
        rng: random.Random,
        recorder: Recorder,
        world: dict[str, list[Row]],
        days: int,
        start: date,
        orders_per_day: float,
    ) -> Business:
        """A shop that carries on from existing rows (a live database's tables) on ``start``.

        Nothing is snapshotted or stocked again: the rows are the state, ids continue
        after the highest ones, and orders still in flight go on through their life cycle.
        """
        return cls(
            rng=rng,
            recorder=recorder,
            clients=0,
            products=0,
            days=days,
            start=start,
            snapshot_day=-1,
            orders_per_day=orders_per_day,
            world=world,
        )

    # -- the world before the first day ------------------------------------------------

    def _init_world(self, clients: int, products: int) -> None:
        t0 = self.start_us - 400 * DAY_US
        for name, level, cost in cat.TRANSPORTERS:
            tid = next(self._ids["transporter"])
            row = {
                "transporter_id": tid,
                "name": name,
                "service_level": level,
                "cost_per_order": cost,
                "updated_at": self.clock.iso(t0),
            }
            self.tables["transporter"][(tid,)] = row
        for _ in range(products):
            created = self.start_us - self.rng.randint(30, 1000) * DAY_US
            self._put(None, "product", self._new_product(created))
        for _ in range(clients):
            created = self.start_us - self.rng.randint(1, 1100) * DAY_US
            self._put(None, "client", self._new_client(created))

    def _adopt(self, world: dict[str, list[Row]]) -> None:
        """Take over existing rows. What is not a column (how active a client is, how
        popular a product) is drawn afresh; keys are visited in order, so a seed still
        makes the same business."""
        rng = self.rng
        for table in TABLES:
            rows = self.tables[table]
            for row in world.get(table, ()):
                rows[tuple(row[k] for k in PRIMARY_KEYS[table])] = row
            if len(PRIMARY_KEYS[table]) == 1 and rows:
                self._ids[table] = count(max(k[0] for k in rows) + 1)
        for (cid,) in sorted(self.tables["client"]):
            self.activity[cid] = 0.0 if rng.random() < 0.08 else rng.gammavariate(1.6, 1 / 1.6)
            self.taste[cid] = rng.randrange(cat.TASTES)
            self.orders_of[cid] = 0
        for order in self.tables["orders"].values():
            cid = order["client_id"]
            self.orders_of[cid] = self.orders_of.get(cid, 0) + 1
        for (pid,), product in sorted(self.tables["product"].items()):
            self.popularity[pid] = math.exp(rng.gauss(0, 0.9))
            self.affinity[pid] = self._affinity()
            self.launch_price[pid] = cents(product["price"])
        lines: dict[int, list[int]] = {}
        for (iid,), line in sorted(self.tables["order_item"].items()):
            lines.setdefault(line["order_id"], []).append(iid)
        for (oid,), order in sorted(self.tables["orders"].items()):
            if order["status"] == "placed":
                self.open_lines[oid] = lines.get(oid, [])
                self._schedule(self._at(self.start_us, 0, 3), self._pay, oid)
            elif order["status"] == "paid":
                self._schedule(self._at(self.start_us, 1, 12), self._ship, oid)
            elif order["status"] == "shipped":
                self._schedule(self._at(self.start_us, 8, 20), self._deliver, oid)

    def _new_client(self, created_us: int) -> Row:
        rng = self.rng
        cid = next(self._ids["client"])
        first, last = rng.choice(cat.FIRST_NAMES), rng.choice(cat.LAST_NAMES)
        region = rng.choice(tuple(cat.REGIONS))
        self.activity[cid] = 0.0 if rng.random() < 0.08 else rng.gammavariate(1.6, 1 / 1.6)
        self.taste[cid] = rng.randrange(cat.TASTES)
        self.orders_of[cid] = 0
        return {
            "client_id": cid,
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}.{cid}@example.com".lower(),
            "phone": self._phone(),
            "city": rng.choice(cat.REGIONS[region]),
            "region": region,
            "segment": rng.choices(cat.SEGMENTS, cat.SEGMENT_SHARE)[0],
            "created_at": created_us,
            "updated_at": self.clock.iso(created_us),
        }

    def _phone(self) -> str:
        digits = " ".join(f"{self.rng.randint(0, 99):02d}" for _ in range(4))
        return f"+33 6 {digits}"

    def _new_product(self, created_us: int) -> Row:
        rng = self.rng
        pid = next(self._ids["product"])
        category = rng.choice(cat.CATEGORIES)
        brand = rng.choice(cat.BRANDS[category])
        noun = rng.choice(cat.NOUNS[category])
        adjective = rng.choice(cat.ADJECTIVES)
        median, spread = cat.CATEGORY_PRICE[category]
        price = self._price_point(median * math.exp(rng.gauss(0, spread)))
        self.popularity[pid] = math.exp(rng.gauss(0, 0.9))
        self.affinity[pid] = self._affinity()
        self.launch_price[pid] = price
        features = rng.sample(cat.FEATURES[category], 2)
        return {
            "product_id": pid,
            "sku": f"{category[:3].upper()}-{pid:05d}",
            "name": f"{brand} {adjective} {noun}",
            "description": (
                f"A {adjective} {noun} by {brand} for the {category} aisle: "
                f"{features[0]}, {features[1]}."
            ),
            "category": category,
            "brand": brand,
            "price": money(price),
            "is_active": True,
            "created_at": created_us,
            "updated_at": self.clock.iso(created_us),
        }

    def _affinity(self) -> list[float]:
        return [math.exp(cat.TASTE_SPREAD * self.rng.gauss(0, 1)) for _ in range(cat.TASTES)]

    @staticmethod
    def _price_point(value: float) -> int:
        """Prices end in .99 or .49, like a shop's."""
        whole = max(0, int(value))
        return whole * 100 + (99 if value - whole >= 0.5 or whole == 0 else 49)

    # -- table mutations -----------------------------------------------------------------

    def _tx(self, at_us: int) -> Transaction:
        return Transaction(commit_us=at_us)

    def _put(self, tx: Transaction | None, table: str, row: Row) -> None:
        key = tuple(row[k] for k in PRIMARY_KEYS[table])
        self.tables[table][key] = row
        if tx is not None:
            tx.changes.append(Change(table, "c", self.rec.key_of(table, row), None, row))

    def _update(self, tx: Transaction, table: str, key: tuple[Any, ...], **values: Any) -> Row:
        old = self.tables[table][key]
        new = {**old, **values, "updated_at": self.clock.iso(tx.commit_us)}
        self.tables[table][key] = new
        tx.changes.append(Change(table, "u", self.rec.key_of(table, new), old, new))
        return new

    def _delete(self, tx: Transaction, table: str, key: tuple[Any, ...]) -> None:
        old = self.tables[table].pop(key)
        tx.changes.append(Change(table, "d", self.rec.key_of(table, old), old, None))

    def _schedule(self, at_us: int, action: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (at_us, next(self._seq), action, args))

    # -- the days ------------------------------------------------------------------------

    def run(self, on_day: Callable[[int], None] | None = None) -> None:
        if not self.resumed:
            self._stock_everything()
        for day in range(self.days):
            day_us = self.start_us + day * DAY_US
            if day == self.snapshot_day:
                self.rec.snapshot(
                    {t: list(self.tables[t].values()) for t in TABLES}, day_us + 2 * MINUTE_US
                )
            self._plan_day(day, day_us)
            end = day_us + DAY_US
            while self._queue and self._queue[0][0] < end:
                at, _, action, args = heapq.heappop(self._queue)
                action(at, *args)
            if on_day is not None:
                on_day(day)
        self.rec.close()

    def _stock_everything(self) -> None:
        for (pid,) in list(self.tables["product"]):
            self._add_stock(None, pid, self.start_us - DAY_US)

    def _add_stock(self, tx: Transaction | None, pid: int, at_us: int) -> None:
        level = self.popularity[pid]
        reorder = max(5, int(12 * level) + self.rng.randint(0, 10))
        for wh in cat.WAREHOUSES:
            row = {
                "product_id": pid,
                "warehouse_id": wh,
                "quantity_on_hand": reorder * 3 + self.rng.randint(0, reorder),
                "reorder_point": reorder,
                "updated_at": self.clock.iso(at_us),
            }
            self._put(tx, "stock", row)

    def _at(self, day_us: int, from_hour: float, to_hour: float) -> int:
        return day_us + int(self.rng.uniform(from_hour, to_hour) * HOUR_US)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 50:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _plan_day(self, day: int, day_us: int) -> None:
        rng = self.rng
        today = date(1970, 1, 1) + timedelta(days=self.start_day + day)
        n_clients = len(self.tables["client"])
        n_products = len(self.tables["product"])
        self._schedule(day_us + 6 * HOUR_US, self._restock)
        if today.month == 1 and today.day == 2:
            self._schedule(day_us + 5 * HOUR_US, self._yearly_price_review)
        for _ in range(self._poisson(0.45 * n_clients / 730)):
            self._schedule(self._at(day_us, 7, 23), self._sign_up)
        for _ in range(self._poisson(0.004 * n_clients)):
            self._schedule(self._at(day_us, 0, 24), self._client_changes)
        for _ in range(self._poisson(0.05 * n_clients / 730)):
            self._schedule(self._at(day_us, 0, 24), self._erase_client)
        for _ in range(self._poisson(n_products / 75)):
            self._schedule(self._at(day_us, 8, 18), self._change_price)
        for _ in range(self._poisson(n_products / 400)):
            self._schedule(self._at(day_us, 8, 18), self._edit_description)
        if rng.random() < 0.08:
            self._schedule(self._at(day_us, 9, 17), self._launch_product)
        if rng.random() < 0.03:
            self._schedule(self._at(day_us, 9, 17), self._discontinue_product)
        if rng.random() < 1 / 18:
            self._schedule(self._at(day_us, 9, 12), self._plan_promotion, today)
        if rng.random() < 1 / 200:
            self._schedule(self._at(day_us, 9, 12), self._change_transporter_cost)
        for _ in range(self._poisson(cat.TASTE_CHANGE_PER_DAY * n_clients)):
            self._change_taste()
        demand = self._prepare_samplers(today, self._order_rate(day, today))
        if self.on_demand is not None:  # reads the day's demand, draws nothing
            self.on_demand(demand)
        rate = demand.order_rate
        for _ in range(self._poisson(rate)):
            self._schedule(self._at(day_us, 6.5, 23.9), self._place_order)

    def _order_rate(self, day: int, today: date) -> float:
        growth = 1 + 0.4 * day / max(1, self.days)
        weekly = cat.WEEKDAY_FACTOR[today.weekday()]
        doy = today.timetuple().tm_yday
        yearly = 1 + 0.22 * math.cos(2 * math.pi * (doy - 345) / 365.25)
        promo = 1.12 if self._promotions_on(today) else 1.0
        return self.orders_per_day * growth * weekly * yearly * promo

    def _promotions_on(self, today: date) -> dict[str, Row]:
        day = (today - date(1970, 1, 1)).days
        active: dict[str, Row] = {}
        for row in self.tables["promotion"].values():
            if row["starts_on"] <= day <= row["ends_on"]:
                best = active.get(row["category"])
                if best is None or cents(row["discount_pct"]) > cents(best["discount_pct"]):
                    active[row["category"]] = row
        return active

    def _prepare_samplers(self, today: date, rate: float) -> DayDemand:
        """Today's demand: who orders, and what each group of clients buys."""
        self._promos = self._promotions_on(today)
        ids = [cid for (cid,) in self.tables["client"] if self.activity[cid] > 0]
        self._client_sampler = (ids, list(accumulate(self.activity[c] for c in ids)))
        doy = today.timetuple().tm_yday
        season = {
            c: 1 + a * math.cos(2 * math.pi * (doy - peak) / 365.25)
            for c, (peak, a) in cat.CATEGORY_SEASON.items()
        }
        lift = {
            c: 1 + cat.PROMOTION_LIFT_PER_PCT * cents(p["discount_pct"]) / 100
            for c, p in self._promos.items()
        }
        products = [r for r in self.tables["product"].values() if r["is_active"]]
        pids = [r["product_id"] for r in products]
        segment_weights = {}
        for segment in cat.SEGMENTS:
            pref = cat.SEGMENT_CATEGORY_PREFERENCE[segment]
            elasticity = cat.SEGMENT_PRICE_ELASTICITY[segment]
            weights = []
            for r in products:
                c, pid = r["category"], r["product_id"]
                relative_price = cents(r["price"]) / max(1, self.launch_price[pid])
                w = self.popularity[pid] * pref.get(c, 1.0) * season[c] * lift.get(c, 1.0)
                weights.append(w * relative_price**-elasticity)
            segment_weights[segment] = np.array(weights, dtype=float)
        clients = self.tables["client"]
        demand = DayDemand(
            day=today,
            order_rate=rate,
            product_ids=np.array(pids, dtype=np.int64),
            segment_weights=segment_weights,
            affinity=np.array([self.affinity[p] for p in pids], dtype=float).reshape(
                len(pids), cat.TASTES
            ),
            client_ids=np.array(ids, dtype=np.int64),
            client_segments=np.array(
                [cat.SEGMENTS.index(clients[(c,)]["segment"]) for c in ids], dtype=np.int64
            ),
            client_tastes=np.array([self.taste[c] for c in ids], dtype=np.int64),
            client_activity=np.array([self.activity[c] for c in ids], dtype=float),
        )
        self._product_sampler = {
            (segment, taste): (pids, np.cumsum(demand.weights((segment, taste))).tolist())
            for segment in cat.SEGMENTS
            for taste in range(cat.TASTES)
        }
        return demand

    def _change_taste(self) -> None:
        """Not a source transaction: a client starts buying like another group."""
        keys = list(self.tables["client"])
        if keys:
            (cid,) = self.rng.choice(keys)
            self.taste[cid] = self.rng.randrange(cat.TASTES)

    @staticmethod
    def _draw(rng: random.Random, sampler: Sampler) -> int:
        ids, cumulative = sampler
        return ids[bisect_right(cumulative, rng.random() * cumulative[-1])]

    # -- actions: each one is a source transaction ----------------------------------------

    def _restock(self, at: int) -> None:
        by_warehouse: dict[str, list[tuple[Any, ...]]] = {}
        for key, row in self.tables["stock"].items():
            if row["quantity_on_hand"] < row["reorder_point"]:
                by_warehouse.setdefault(row["warehouse_id"], []).append(key)
        for i, (_, keys) in enumerate(sorted(by_warehouse.items())):
            tx = self._tx(at + i * MINUTE_US)
            for key in keys:
                row = self.tables["stock"][key]
                delivered = row["reorder_point"] * 4 + self.rng.randint(0, row["reorder_point"])
                self._update(tx, "stock", key, quantity_on_hand=row["quantity_on_hand"] + delivered)
            self.rec.commit(tx)

    def _yearly_price_review(self, at: int) -> None:
        tx = self._tx(at)
        for key, row in list(self.tables["product"].items()):
            if row["is_active"]:
                raised = cents(row["price"]) * self.rng.uniform(1.01, 1.05)
                self._update(tx, "product", key, price=money(self._price_point(raised / 100)))
        self.rec.commit(tx)

    def _sign_up(self, at: int) -> None:
        tx = self._tx(at)
        self._put(tx, "client", self._new_client(at))
        self.rec.commit(tx)

    def _client_changes(self, at: int) -> None:
        keys = list(self.tables["client"])
        if not keys:
            return
        key = self.rng.choice(keys)
        row = self.tables["client"][key]
        tx = self._tx(at)
        kind = self.rng.random()
        if kind < 0.35:
            region = self.rng.choice(tuple(cat.REGIONS))
            city = self.rng.choice(cat.REGIONS[region])
            self._update(tx, "client", key, region=region, city=city)
        elif kind < 0.65:
            domain = self.rng.choice(("example.com", "example.org", "example.net"))
            email = f"{row['first_name']}.{row['last_name']}.{row['client_id']}@{domain}".lower()
            self._update(tx, "client", key, email=email)
        elif kind < 0.9:
            self._update(tx, "client", key, phone=self._phone())
        else:
            segment = self.rng.choice([s for s in cat.SEGMENTS if s != row["segment"]])
            self._update(tx, "client", key, segment=segment)
        self.rec.commit(tx)

    def _erase_client(self, at: int) -> None:
        """A right-to-erasure request, for a client who never ordered (orders keep their
        client, so only clients without orders can be deleted outright)."""
        candidates = [cid for (cid,) in self.tables["client"] if self.orders_of[cid] == 0]
        if not candidates:
            return
        cid = self.rng.choice(candidates)
        tx = self._tx(at)
        self._delete(tx, "client", (cid,))
        self.activity[cid] = 0.0
        self.rec.commit(tx)

    def _active_product(self) -> tuple[Any, ...] | None:
        keys = [k for k, r in self.tables["product"].items() if r["is_active"]]
        return self.rng.choice(keys) if keys else None

    def _change_price(self, at: int) -> None:
        key = self._active_product()
        if key is None:
            return
        old = cents(self.tables["product"][key]["price"])
        new = self._price_point(old * self.rng.uniform(0.82, 1.15) / 100)
        if new != old:
            tx = self._tx(at)
            self._update(tx, "product", key, price=money(new))
            self.rec.commit(tx)

    def _edit_description(self, at: int) -> None:
        key = self._active_product()
        if key is None:
            return
        row = self.tables["product"][key]
        extra = self.rng.choice(cat.FEATURES[row["category"]])
        tx = self._tx(at)
        self._update(tx, "product", key, description=f"{row['description']} Now {extra}.")
        self.rec.commit(tx)

    def _launch_product(self, at: int) -> None:
        tx = self._tx(at)
        row = self._new_product(at)
        self._put(tx, "product", row)
        self._add_stock(tx, row["product_id"], at)
        self.rec.commit(tx)

    def _discontinue_product(self, at: int) -> None:
        key = self._active_product()
        if key is None or len(self.tables["product"]) < 10:
            return
        tx = self._tx(at)
        self._update(tx, "product", key, is_active=False)
        self.rec.commit(tx)

    def _plan_promotion(self, at: int, today: date) -> None:
        category = self.rng.choice(cat.CATEGORIES)
        pct = self.rng.choice((10, 15, 20, 25, 30))
        starts = (today - date(1970, 1, 1)).days + self.rng.randint(3, 10)
        pid = next(self._ids["promotion"])
        month = (date(1970, 1, 1) + timedelta(days=starts)).strftime("%B %Y")
        tx = self._tx(at)
        row = {
            "promotion_id": pid,
            "name": f"{category.title()} days {month}",
            "category": category,
            "discount_pct": f"{pct}.00",
            "starts_on": starts,
            "ends_on": starts + self.rng.randint(5, 13),
            "updated_at": self.clock.iso(at),
        }
        self._put(tx, "promotion", row)
        self.rec.commit(tx)

    def _change_transporter_cost(self, at: int) -> None:
        key = self.rng.choice(list(self.tables["transporter"]))
        old = cents(self.tables["transporter"][key]["cost_per_order"])
        tx = self._tx(at)
        self._update(tx, "transporter", key, cost_per_order=money(old + self.rng.randint(5, 60)))
        self.rec.commit(tx)

    # -- the order life cycle ---------------------------------------------------------------

    def _place_order(self, at: int) -> None:
        rng = self.rng
        if not self._client_sampler[0]:
            return
        cid = self._draw(rng, self._client_sampler)
        client = self.tables["client"].get((cid,))
        if client is None:
            return
        segment = client["segment"]
        level = rng.choices(cat.SERVICE_LEVELS, cat.SEGMENT_SERVICE_LEVEL[segment])[0]
        transporters = [
            r["transporter_id"]
            for r in self.tables["transporter"].values()
            if r["service_level"] == level
        ]
        oid = next(self._ids["orders"])
        tx = self._tx(at)
        self._put(
            tx,
            "orders",
            {
                "order_id": oid,
                "client_id": cid,
                "transporter_id": rng.choice(transporters),
                "status": "placed",
                "ordered_at": at,
                "shipped_at": None,
                "delivered_at": None,
                "cancelled_at": None,
                "updated_at": self.clock.iso(at),
            },
        )
        n_lines = min(cat.MAX_LINES, 1 + self._poisson(cat.EXTRA_LINES))
        chosen: list[int] = []
        for _ in range(n_lines * cat.DRAWS_PER_LINE):
            pid = self._draw(rng, self._product_sampler[(segment, self.taste[cid])])
            if pid not in chosen:
                chosen.append(pid)
            if len(chosen) == n_lines:
                break
        lines = []
        for pid in chosen:
            product = self.tables["product"][(pid,)]
            promo = self._promos.get(product["category"])
            quantity = 1 + self._poisson(cat.SEGMENT_EXTRA_UNITS[segment])
            lines.append(self._line(tx, oid, product, promo, quantity))
        self.open_lines[oid] = lines
        self.orders_of[cid] += 1
        self.rec.commit(tx)
        roll = rng.random()
        if roll < cat.CANCEL_SHARE:
            self._schedule(at + int(rng.uniform(0.3, 30) * HOUR_US), self._cancel, oid)
            return
        pay_at = at + int(rng.uniform(5, 240) * MINUTE_US)
        if roll < cat.CANCEL_SHARE + cat.EDIT_SHARE:
            self._schedule(at + int(rng.uniform(1, 4) * MINUTE_US), self._edit_basket, oid)
        self._schedule(pay_at, self._pay, oid)

    def _line(
        self, tx: Transaction, oid: int, product: Row, promo: Row | None, quantity: int
    ) -> int:
        iid = next(self._ids["order_item"])
        price = cents(product["price"])
        pct = cents(promo["discount_pct"]) if promo else 0  # hundredths of a percent
        row = {
            "order_item_id": iid,
            "order_id": oid,
            "product_id": product["product_id"],
            "promotion_id": promo["promotion_id"] if promo else None,
            "quantity": quantity,
            "unit_price": product["price"],
            "discount_pct": money(pct),
            "discount_amount": money(_discount(quantity, price, pct)),
            "updated_at": self.clock.iso(tx.commit_us),
        }
        self._put(tx, "order_item", row)
        return iid

    def _edit_basket(self, at: int, oid: int) -> None:
        """The client changes a quantity before paying."""
        lines = self.open_lines.get(oid)
        if not lines:
            return
        key = (self.rng.choice(lines),)
        row = self.tables["order_item"][key]
        quantity = row["quantity"] + 1
        pct = cents(row["discount_pct"])
        tx = self._tx(at)
        self._update(
            tx,
            "order_item",
            key,
            quantity=quantity,
            discount_amount=money(_discount(quantity, cents(row["unit_price"]), pct)),
        )
        self.rec.commit(tx)

    def _cancel(self, at: int, oid: int) -> None:
        """Cancelled before payment: the order lines are deleted, the order stays."""
        tx = self._tx(at)
        for iid in self.open_lines.pop(oid):
            self._delete(tx, "order_item", (iid,))
        self._update(tx, "orders", (oid,), status="cancelled", cancelled_at=at)
        self.rec.commit(tx)

    def _pay(self, at: int, oid: int) -> None:
        """Payment: the order is paid, a sale is recorded, stock leaves the warehouse."""
        order = self.tables["orders"][(oid,)]
        client = self.tables["client"][(order["client_id"],)]
        warehouse = cat.WAREHOUSE_OF_REGION[client["region"]]
        lines = [self.tables["order_item"][(iid,)] for iid in self.open_lines.pop(oid)]
        gross = sum(line["quantity"] * cents(line["unit_price"]) for line in lines)
        discount = sum(cents(line["discount_amount"]) for line in lines)
        tx = self._tx(at)
        self._update(tx, "orders", (oid,), status="paid")
        sid = next(self._ids["sale"])
        self._put(
            tx,
            "sale",
            {
                "sale_id": sid,
                "order_id": oid,
                "client_id": order["client_id"],
                "sold_at": at,
                "gross_amount": money(gross),
                "discount_amount": money(discount),
                "net_amount": money(gross - discount),
                "payment_method": self.rng.choices(cat.PAYMENT_METHODS, cat.PAYMENT_SHARE)[0],
                "updated_at": self.clock.iso(at),
            },
        )
        for line in lines:
            key = (line["product_id"], warehouse)
            on_hand = self.tables["stock"][key]["quantity_on_hand"]
            self._update(tx, "stock", key, quantity_on_hand=max(0, on_hand - line["quantity"]))
        self.rec.commit(tx)
        self._schedule(at + int(self.rng.uniform(10, 50) * HOUR_US), self._ship, oid)

    def _ship(self, at: int, oid: int) -> None:
        tx = self._tx(at)
        order = self._update(tx, "orders", (oid,), status="shipped", shipped_at=at)
        self.rec.commit(tx)
        level = self.tables["transporter"][(order["transporter_id"],)]["service_level"]
        low, high = cat.DELIVERY_DAYS[level]
        self._schedule(at + int(self.rng.uniform(low, high) * DAY_US), self._deliver, oid)

    def _deliver(self, at: int, oid: int) -> None:
        tx = self._tx(at)
        self._update(tx, "orders", (oid,), status="delivered", delivered_at=at)
        self.rec.commit(tx)


def _discount(quantity: int, price_cents: int, pct_hundredths: int) -> int:
    """Discount in cents of ``quantity`` x ``price`` at ``pct`` %, rounded half up."""
    return (quantity * price_cents * pct_hundredths + 5_000) // 10_000
