"""The demand the demo shop samples from: expected units per product and ISO week.

A forecast of the demo data has a floor: the expectation the simulation draws around.
``DemandOracle.observe`` is ``Business``'s demand hook: each day, before the day's orders
are drawn, it records the probabilities they are drawn from (the day's Poisson order
rate, with its growth, week, year and promotion factors; the activity of the clients who
can order, by segment; each segment's product weights, with popularity, category
preference, season, promotion lift and price elasticity, times each product's affinity
with the taste of the clients: a group is a segment and a taste). It draws nothing, so a seed
makes the same change events with or without it. ``expected_demand`` turns the records
into the expected units of the orders that are not cancelled, by order date, summed per
product and ISO week (Monday), the forecast's target:

    E[units of product i on day d] = rate_d * sum over groups g of share_g(d)
        * sum over n of P(n lines) * P(i among the n | g, d)
        * ((1 - cancel) * (1 + extra units_g) + edit / n)

(cancelled orders lose all their lines; an edited order, never a cancelled one, gives one
of its n lines one more unit). Exact but for these approximations, measured on the default
shop (two days, four segments each, before tastes made groups of them):

* ``P(i among the n)``: an order draws from its segment's weights with replacement,
  skipping products already in its basket: successive sampling without replacement,
  whose inclusion probabilities have no closed form. Rosén's approximation
  ``1 - exp(-tau_n * p_i)``, ``tau_n`` such that they sum to ``n``, is used. Against
  the exact values (numerical integration of the draws' continuous-time embedding), with
  the largest product weighing 2.6 to 7.3 %, it understates that product by 0.8 to 2.5 %
  and its absolute errors add up to 0.3 to 0.6 % of the expected lines, far below the
  sampling noise of a week (about 25 % WAPE per product and week). Lines as independent
  draws (``n * p_i``) would overstate the largest product by up to 6.2 %.
* The ``3 n`` draws an order makes may find fewer than ``n`` distinct products; it never
  happened in 1.6 million simulated baskets, and the formula counts ``n``.
* Order counts above 50 a day are drawn as a rounded normal, whose mean is the rate; a
  client erased or moved to another segment during the day still counts in that day's
  share (well under one order a day); an order of the last day whose cancellation falls
  after the horizon stays uncancelled in the data, not in the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from lakehouse.generate import catalog as cat
from lakehouse.generate.business import DayDemand, Group

SCHEMA = pa.schema(
    [
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("week_start_date", pa.date32(), nullable=False),
        pa.field("expected_units", pa.float64(), nullable=False),
    ]
)
# the purchase propensities' window: the last eight complete weeks
PROPENSITY_DAYS = 56
PROPENSITY_SCHEMA = pa.schema(
    [
        pa.field("client_id", pa.int64(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("window_start", pa.date32(), nullable=False),  # the first day counted
        pa.field("window_end", pa.date32(), nullable=False),  # the day after the last one
        pa.field("expected_orders", pa.float64(), nullable=False),  # that include the product
    ]
)


@dataclass(frozen=True)
class OrderBehaviour:
    """How an order turns into units: the catalog's numbers, replaceable to show that a
    wrong expectation is caught."""

    extra_lines: float = cat.EXTRA_LINES
    max_lines: int = cat.MAX_LINES
    cancel_share: float = cat.CANCEL_SHARE
    edit_share: float = cat.EDIT_SHARE
    extra_units: Mapping[str, float] = field(default_factory=lambda: cat.SEGMENT_EXTRA_UNITS)


class DemandOracle:
    """Collects each simulated day's demand (pass ``observe`` as ``on_demand``)."""

    def __init__(self) -> None:
        self.days: list[DayDemand] = []
        self._affinity: np.ndarray | None = None

    def observe(self, demand: DayDemand) -> None:
        if len(demand.product_ids) == 0:  # no active product: no order today
            return
        affinity = demand.affinity
        if self._affinity is not None and np.array_equal(self._affinity, affinity):
            affinity = self._affinity  # the same products: share one matrix
        self._affinity = affinity
        self.days.append(replace(demand, affinity=affinity))

    def table(self, behaviour: OrderBehaviour | None = None) -> pa.Table:
        return expected_demand(self.days, behaviour or OrderBehaviour())

    def propensities(self, behaviour: OrderBehaviour | None = None) -> pa.Table:
        return purchase_propensities(self.days, behaviour or OrderBehaviour())


def _groups(d: DayDemand) -> tuple[list[Group], np.ndarray, np.ndarray]:
    """The groups with clients who can order, their summed activity, and their product
    weights normalised to probabilities (one row per group)."""
    activity = {g: a for g, a in d.group_activity().items() if a > 0}
    groups = [g for g in sorted(activity) if d.weights(g).sum() > 0]
    if not groups:
        return [], np.zeros(0), np.zeros((0, len(d.product_ids)))
    weights = np.stack([d.weights(g) for g in groups])
    return groups, np.array([activity[g] for g in groups]), weights / weights.sum(1, keepdims=True)


def expected_demand(days: Iterable[DayDemand], behaviour: OrderBehaviour) -> pa.Table:
    """Expected units per product and ISO week: one row per product and week in which it
    could be ordered, sorted by product and week (``SCHEMA``)."""
    weekly: dict[tuple[int, date], float] = {}
    for d in days:
        week = d.day - timedelta(days=d.day.weekday())
        units_of_day = day_units(d, behaviour).tolist()
        for pid, units in zip(d.product_ids.tolist(), units_of_day, strict=True):
            weekly[(pid, week)] = weekly.get((pid, week), 0.0) + units
    keys = sorted(weekly)
    return pa.table(
        [
            pa.array([k[0] for k in keys], pa.int64()),
            pa.array([k[1] for k in keys], pa.date32()),
            pa.array([weekly[k] for k in keys], pa.float64()),
        ],
        schema=SCHEMA,
    )


def day_units(d: DayDemand, behaviour: OrderBehaviour) -> np.ndarray:
    """Expected units of not-cancelled orders of ``d.day``, per product of ``d``."""
    groups, activity, p = _groups(d)
    if not groups:
        return np.zeros(len(d.product_ids))
    lines = np.arange(1, behaviour.max_lines + 1)
    p_lines = line_count_probabilities(behaviour.extra_lines, behaviour.max_lines)
    included = inclusion_probabilities(p, lines)  # groups x lines x products
    extra = np.array([behaviour.extra_units[segment] for segment, _ in groups])
    per_line = (1 - behaviour.cancel_share) * (1 + extra[:, None]) + behaviour.edit_share / lines
    # per group: sum over n of P(n) * per_line(n) * P(i among the n)
    units = np.einsum("gn,gnp->gp", p_lines * per_line, included)
    return d.order_rate * (activity / activity.sum()) @ units


def purchase_propensities(days: Iterable[DayDemand], behaviour: OrderBehaviour) -> pa.Table:
    """The expected number of orders each client places with each product in it, over
    the last ``PROPENSITY_DAYS`` simulated days (``window_bounds``): the propensities the
    orders were drawn from, the ceiling of any recommender ranking a client's products
    for those days (``PROPENSITY_SCHEMA``, one row per client and product it could have
    bought, sorted by client and product). Cancellation falls on a whole order whatever
    its products, so it scales a client's row and changes no ranking; it is left out."""
    days = list(days)
    if not days:
        return PROPENSITY_SCHEMA.empty_table()
    start, end = window_bounds(days[-1].day)
    lines = np.arange(1, behaviour.max_lines + 1)
    p_lines = line_count_probabilities(behaviour.extra_lines, behaviour.max_lines)
    window = [d for d in days if start <= d.day < end]
    clients = sorted({c for d in window for c in d.client_ids.tolist()})
    products = sorted({p for d in window for p in d.product_ids.tolist()})
    row_of_client = {c: i for i, c in enumerate(clients)}
    column_of_product = {p: i for i, p in enumerate(products)}
    expected = np.zeros((len(clients), len(products)))
    possible = np.zeros_like(expected, dtype=bool)
    for d in window:
        groups, _, p = _groups(d)
        if not groups:
            continue
        # P(an order of the group includes the product), over the basket sizes
        contains = np.einsum("n,gnp->gp", p_lines, inclusion_probabilities(p, lines))
        row_of_group = {g: i for i, g in enumerate(groups)}
        group_rows = np.array(
            [
                row_of_group.get((cat.SEGMENTS[s], t), -1)
                for s, t in zip(d.client_segments.tolist(), d.client_tastes.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        ordering = (group_rows >= 0) & (d.client_activity > 0)
        rows = np.array([row_of_client[c] for c in d.client_ids[ordering].tolist()], dtype=np.int64)
        columns = np.array([column_of_product[q] for q in d.product_ids.tolist()], dtype=np.int64)
        odds = d.order_rate * d.client_activity[ordering] / d.client_activity.sum()
        cells = np.ix_(rows, columns)
        expected[cells] += odds[:, None] * contains[group_rows[ordering]]
        possible[cells] = True
    client_index, product_index = np.nonzero(possible)
    count = len(client_index)
    return pa.table(
        [
            pa.array(np.asarray(clients, dtype=np.int64)[client_index], pa.int64()),
            pa.array(np.asarray(products, dtype=np.int64)[product_index], pa.int64()),
            pa.array([start] * count, pa.date32()),
            pa.array([end] * count, pa.date32()),
            pa.array(expected[client_index, product_index], pa.float64()),
        ],
        schema=PROPENSITY_SCHEMA,
    )


def window_bounds(last_day: date) -> tuple[date, date]:
    """The propensities' window: the ``PROPENSITY_DAYS`` up to the end of the last
    complete ISO week (Monday to Sunday) on or before ``last_day``, as [start, end)."""
    end = (
        last_day + timedelta(days=1)
        if last_day.weekday() == 6
        else last_day - timedelta(days=last_day.weekday())
    )
    return end - timedelta(days=PROPENSITY_DAYS), end


def line_count_probabilities(extra: float, most: int) -> np.ndarray:
    """P(n lines) for n = 1..most, n = min(most, 1 + Poisson(extra))."""
    pmf = [math.exp(-extra) * extra**k / math.factorial(k) for k in range(most - 1)]
    return np.array([*pmf, 1 - sum(pmf)])


def inclusion_probabilities(p: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rosén's approximation of P(item i is among ``n`` distinct draws proportional to
    ``p``), one row per ``n`` in ``sizes``: ``1 - exp(-tau * p)`` with ``tau`` such that
    the row sums to ``n``. Newton from ``tau = n`` (left of the root of a concave
    increasing function) climbs to it without overshooting. ``p`` may hold one
    distribution per row (groups x items): the result is then groups x sizes x items."""
    if p.ndim == 1:
        return inclusion_probabilities(p[None, :], sizes)[0]
    available = np.count_nonzero(p, axis=1)[:, None, None]  # groups x 1 x 1
    # n >= available takes every item (tau would be infinite): solved for less, set below
    want = sizes.astype(float)[None, :, None]
    n = np.minimum(want, np.maximum(available - 1, 0))
    q = p[:, None, :]
    tau = n.copy()
    for _ in range(100):
        e = np.exp(-tau * q)
        gap = (1 - e).sum(axis=2, keepdims=True) - n
        if np.all(np.abs(gap) < 1e-10):
            break
        tau -= gap / np.maximum((q * e).sum(axis=2, keepdims=True), 1e-300)
    out = 1 - np.exp(-tau * q)
    full = want >= available
    return np.where(full, (q > 0).astype(float), out)
