"""The demand oracle: it draws nothing, and the shop's realised orders scatter around it.

The realised units come from the ground truth's final rows (lines of orders not
cancelled, by order date's ISO week), the expected ones from the probabilities the
simulation drew them from; a wrong oracle (one that forgets cancellations) fails the same
comparison.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate, ground_truth, simulate
from lakehouse.generate.oracle import (
    SCHEMA,
    DemandOracle,
    OrderBehaviour,
    inclusion_probabilities,
    line_count_probabilities,
)
from lakehouse.settings import Settings, load_settings
from tests.generate.test_generator import _digest

MODERATE = GenerateParams(clients=1000, products=300, days=196, snapshot_day=20)  # 28 weeks
SMALL = GenerateParams(clients=150, products=50, days=120, snapshot_day=20)
# Variance over mean of realised units. A product's lines arrive about as a Poisson process
# and carry 1 + Poisson(mu) units (mu from 0.3 to 2.0 by segment): E[q^2]/E[q], about 2.5.
# A week's orders arrive as one and carry 1 to 6 such lines: about 7 (6.9 measured).
PRODUCT_DISPERSION = 2.5
WEEK_DISPERSION = 7.0

Units = dict[tuple[int, date], float]


def _rng(params: GenerateParams) -> random.Random:
    return random.Random(params.seed)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemandOracle]:
    """A moderate shop's ground truth, and the oracle that watched it being drawn."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("moderate"))
    oracle = DemandOracle()
    business, _ = simulate(MODERATE, settings.changes_path, "oltp", _rng(MODERATE), oracle.observe)
    final = {t: list(rows.values()) for t, rows in business.tables.items()}
    contracts = load_contracts(settings.contracts_dir)
    ground_truth.write(settings.ground_truth_path, contracts, final, Counter(), oracle.table())
    return settings, oracle


def _realised(truth: Path) -> Units:
    """Units on lines of orders not cancelled, by product and order date's ISO week."""
    day_of = {
        o["order_id"]: o["ordered_at"].date()
        for o in pq.read_table(truth / "orders.parquet").to_pylist()
        if o["status"] != "cancelled"
    }
    units: Units = defaultdict(float)
    for line in pq.read_table(truth / "order_item.parquet").to_pylist():
        day = day_of.get(line["order_id"])
        if day is not None:
            units[(line["product_id"], day - timedelta(days=day.weekday()))] += line["quantity"]
    return units


def _expected(table: pa.Table) -> Units:
    rows = table.to_pylist()
    return {(r["product_id"], r["week_start_date"]): r["expected_units"] for r in rows}


def _misfit(expected: Units, realised: Units) -> list[str]:
    """Where realised units stray from the expected further than chance allows."""
    failures = []
    total_e, total_r = sum(expected.values()), sum(realised.values())
    if abs(total_e / total_r - 1) > 0.02:
        failures.append(f"total: expected {total_e:.0f}, realised {total_r:.0f}")
    by_week_e: dict[date, float] = defaultdict(float)
    by_week_r: dict[date, float] = defaultdict(float)
    by_product_e: dict[int, float] = defaultdict(float)
    by_product_r: dict[int, float] = defaultdict(float)
    for (pid, week), units in expected.items():
        by_week_e[week] += units
        by_product_e[pid] += units
    for (pid, week), units in realised.items():
        by_week_r[week] += units
        by_product_r[pid] += units
    for week in sorted(by_week_e.keys() | by_week_r.keys()):
        e, r = by_week_e[week], by_week_r[week]
        if abs(r - e) > 4 * math.sqrt(WEEK_DISPERSION * e):
            failures.append(f"week {week}: expected {e:.0f}, realised {r:.0f}")
    if by_product_r.keys() - by_product_e.keys():
        failures.append("products sold that the oracle never expected")
    z = {
        pid: (by_product_r[pid] - e) / math.sqrt(PRODUCT_DISPERSION * e)
        for pid, e in by_product_e.items()
    }
    for pid, e in by_product_e.items():
        r = by_product_r[pid]
        if abs(z[pid]) > 4 or (e >= 1500 and abs(r / e - 1) > 0.10):
            failures.append(f"product {pid}: expected {e:.0f}, realised {r:.0f}")
    rms = math.sqrt(sum(v * v for v in z.values()) / len(z))
    if not 0.8 <= rms <= 1.25:
        failures.append(f"products' z-scores have an RMS of {rms:.2f}, not about 1")
    return failures


def test_the_oracle_draws_nothing(tmp_path: Path) -> None:
    """Same seed, same events with or without the oracle; one draw in the hook shows."""
    oracle = DemandOracle()
    simulate(SMALL, tmp_path / "without", "oltp", _rng(SMALL))
    simulate(SMALL, tmp_path / "with", "oltp", _rng(SMALL), oracle.observe)
    rng = _rng(SMALL)

    def drawing(*_: object) -> None:  # an oracle that takes one draw a day
        rng.random()

    simulate(SMALL, tmp_path / "drawing", "oltp", rng, drawing)
    assert len(oracle.days) == SMALL.days
    assert _digest(tmp_path / "with") == _digest(tmp_path / "without")
    assert _digest(tmp_path / "drawing") != _digest(tmp_path / "without")


def test_generate_writes_the_expected_demand(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "generated")
    generate(settings, SMALL)
    oracle = DemandOracle()
    simulate(SMALL, tmp_path / "direct", "oltp", _rng(SMALL), oracle.observe)
    written = pq.read_table(settings.ground_truth_path / "expected_demand.parquet")
    assert written.schema.equals(SCHEMA)
    assert written.equals(oracle.table())
    weeks = written.column("week_start_date").to_pylist()
    assert {w.weekday() for w in weeks} == {0}
    assert min(weeks) == SMALL.start_date - timedelta(days=SMALL.start_date.weekday())


def test_realised_units_scatter_around_the_expected_demand(
    shop: tuple[Settings, DemandOracle],
) -> None:
    settings, _ = shop
    truth = settings.ground_truth_path
    expected = _expected(pq.read_table(truth / "expected_demand.parquet"))
    assert _misfit(expected, _realised(truth)) == []


def test_an_oracle_that_forgets_cancellations_is_caught(
    shop: tuple[Settings, DemandOracle],
) -> None:
    settings, oracle = shop
    wrong = _expected(oracle.table(OrderBehaviour(cancel_share=0.0)))
    failures = _misfit(wrong, _realised(settings.ground_truth_path))
    assert any(f.startswith("total:") for f in failures)


def test_inclusion_probabilities_sum_to_the_basket_size() -> None:
    p = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    included = inclusion_probabilities(p, np.arange(1, 7))
    assert np.allclose(included.sum(axis=1), [1, 2, 3, 4, 4, 4])
    assert np.all(np.diff(included, axis=0) >= 0)  # a bigger basket misses nothing
    assert 0.5 < included[1, 0] < 2 * 0.5  # a second line skips duplicates: not 2 p
    assert np.all(included[:, 4] == 0)
    assert np.isclose(line_count_probabilities(1.3, 6).sum(), 1)
