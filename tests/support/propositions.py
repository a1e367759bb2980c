"""Propositions planted in the lake's ``ml`` tables, as the recommendation job writes them:
for tests of what reads the propositions marts (the gate, the dashboards, both engines),
whatever model made them.

Rows are realistic for the lake they are planted in: the live clients, the active
products, ranks 1..N (N = 10, or fewer when the catalogue is smaller), reasons from
``REASONS``, a backtest at a cutoff 8 weeks before the data ends, and metrics for the
model and three baselines over every client and per segment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from lakehouse.lake import ml_tables
from lakehouse.settings import Settings
from tests.support.forecasts import active_products, silver

TOP_N = 10
HORIZON_DAYS = 56  # dbt's var recommendation_horizon_days
MODEL = "propositions"
BASELINES = ("global_popularity", "segment_region_popularity", "repeat_plus_popularity")

Rows = list[dict[str, Any]]
Amend = Callable[[str, Rows], Rows]


def live_clients(settings: Settings) -> dict[int, dict[str, Any]]:
    """The clients of silver that are not deleted, by id: their region and segment."""
    return {
        r["client_id"]: {"region": r["region"], "segment": r["segment"]}
        for r in silver(settings, "client").to_pylist()
        if not r.get("_deleted")
    }


def cutoff(settings: Settings) -> date:
    """8 weeks before the data ends: the day after the newest order, less 56 days."""
    newest = max(silver(settings, "orders").column("ordered_at").to_pylist()).date()
    return newest + timedelta(days=1) - timedelta(days=HORIZON_DAYS)


def top_n(settings: Settings) -> int:
    """How many products each client is proposed: 10, or one fewer than the active
    products when the catalogue is small (a test may then add one more product)."""
    return min(TOP_N, len(active_products(settings)) - 1)


def plant(
    settings: Settings,
    run_id: str,
    version: str,
    *,
    now: datetime | None = None,
    amend: Amend | None = None,
) -> date:
    """A scoring run ``run_id`` of ``version`` at ``now`` (default: now): every live
    client's top N among the active products (the k-th client's list starts at the k-th
    product, so every product is proposed), the version's backtest of the same shape at
    the cutoff and its metrics; returns the cutoff. ``amend(table, rows)`` returns the
    rows to write to the ``ml`` table instead: a test's defects, planted in rows that are
    otherwise valid."""
    now = now or datetime.now(UTC)
    clients = live_clients(settings)
    products = active_products(settings)
    n = top_n(settings)
    at = cutoff(settings)
    as_of = datetime.combine(at + timedelta(days=HORIZON_DAYS), datetime.min.time(), UTC)
    recommendations: Rows = []
    backtest: Rows = []
    for k, client_id in enumerate(sorted(clients)):
        for rank in range(1, n + 1):
            recommendations.append(
                {
                    "scoring_run_id": run_id,
                    "client_id": client_id,
                    "rank": rank,
                    "product_id": products[(k + rank - 1) % len(products)],
                    "score": round(1.0 - rank / (2 * n) - k / 1000, 6),
                    "reason": ml_tables.REASONS[(k + rank) % len(ml_tables.REASONS)],
                    "model_name": MODEL,
                    "model_version": version,
                    "features_as_of": as_of,
                    "scored_at": now,
                }
            )
            backtest.append(
                {
                    "model_version": version,
                    "cutoff_date": at,
                    "client_id": client_id,
                    "rank": rank,
                    "product_id": products[(2 * k + rank) % len(products)],
                    "score": round(1.0 - rank / (2 * n), 6),
                    "recorded_at": now,
                }
            )
    segments = [ml_tables.ALL_SEGMENTS, *sorted({c["segment"] for c in clients.values()})]
    metrics: Rows = [
        {
            "model_version": version,
            "cutoff_date": at,
            "horizon_days": HORIZON_DAYS,
            "recommender": recommender,
            "is_baseline": recommender != MODEL,
            "segment": segment,
            "clients": sum(
                1 for c in clients.values() if segment in (c["segment"], ml_tables.ALL_SEGMENTS)
            ),
            "map_at_10": 0.30 - 0.05 * b - 0.01 * s,
            "ndcg_at_10": 0.40 - 0.05 * b - 0.01 * s,
            "recall_at_10": 0.50 - 0.05 * b - 0.01 * s,
            "catalogue_coverage": 1.0 - 0.2 * b,
            "recorded_at": now,
        }
        for b, recommender in enumerate((MODEL, *BASELINES))
        for s, segment in enumerate(segments)
    ]
    if amend is not None:
        recommendations = amend(ml_tables.RECOMMENDATIONS, recommendations)
        backtest = amend(ml_tables.RECOMMENDATION_BACKTESTS, backtest)
        metrics = amend(ml_tables.RECOMMENDATION_METRICS, metrics)
    for table, rows in (
        (ml_tables.RECOMMENDATIONS, recommendations),
        (ml_tables.RECOMMENDATION_BACKTESTS, backtest),
        (ml_tables.RECOMMENDATION_METRICS, metrics),
    ):
        ml_tables.append(settings, table, pa.Table.from_pylist(rows))
    return at
