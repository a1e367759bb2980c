"""Ranking quality of the search on labelled queries: nDCG@k and recall@k per mode, and
the latency of each query.

nDCG uses the exponential gain ``2**grade - 1`` over ``log2(rank + 1)``, normalised by the
ideal ordering of the query's graded products; recall@k is the share of the query's
relevant products (grade > 0) in its first k. A query with no relevant product in the
catalogue is left out (it would score 0 or 1 whatever the ranking), and counted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lakehouse.search.retrieve import MODES, Mode, Searcher


@dataclass(frozen=True)
class Judged:
    """One query and its graded products (product id -> grade, grade > 0)."""

    query: str
    grades: Mapping[int, int]


@dataclass(frozen=True)
class ModeScore:
    mode: Mode
    ndcg: float
    recall: float
    latency_p50_ms: float
    latency_p95_ms: float
    queries: int


def ndcg_at(ranked: Sequence[int], grades: Mapping[int, int], k: int) -> float:
    gains = np.array([2.0 ** grades.get(pid, 0) - 1 for pid in ranked[:k]])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(np.array([2.0**g - 1 for g in grades.values()]))[::-1][:k]
    best = float((ideal * discounts[: len(ideal)]).sum())
    return float((gains * discounts[: len(gains)]).sum()) / best if best > 0 else 0.0


def recall_at(ranked: Sequence[int], grades: Mapping[int, int], k: int) -> float:
    relevant = {pid for pid, g in grades.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def evaluate(
    searcher: Searcher,
    judged: Sequence[Judged],
    k: int = 10,
    modes: Sequence[Mode] = MODES,
    fresh_queries: bool = True,
) -> tuple[list[ModeScore], dict[Mode, list[float]]]:
    """Each mode's mean nDCG@k and recall@k over the judged queries that have a relevant
    product, with its latency percentiles; and each query's nDCG@k by mode (in the order
    of ``judged``, the queries without relevant products left out).

    The modes take turns on each query, so a load that changes during the run weighs on
    all of them alike; with ``fresh_queries`` no search finds the query's embedding made
    by an earlier one (each mode that needs it pays for it), and every mode first runs
    one untimed search, so none is timed warming up code the others then reuse."""
    scored = [j for j in judged if j.grades]
    if fresh_queries:
        for mode in modes:
            searcher.search("warming up", top=k, mode=mode)
    ndcgs: dict[Mode, list[float]] = {m: [] for m in modes}
    recalls: dict[Mode, list[float]] = {m: [] for m in modes}
    latencies: dict[Mode, list[float]] = {m: [] for m in modes}
    for item in scored:
        for mode in modes:
            if fresh_queries:
                searcher.forget_queries()
            start = time.perf_counter()
            hits = searcher.search(item.query, top=k, mode=mode)
            latencies[mode].append((time.perf_counter() - start) * 1000)
            ranked = [h.product_id for h in hits]
            ndcgs[mode].append(ndcg_at(ranked, item.grades, k))
            recalls[mode].append(recall_at(ranked, item.grades, k))
    results = [
        ModeScore(
            mode=mode,
            ndcg=float(np.mean(ndcgs[mode])) if scored else 0.0,
            recall=float(np.mean(recalls[mode])) if scored else 0.0,
            latency_p50_ms=float(np.percentile(latencies[mode], 50)) if scored else 0.0,
            latency_p95_ms=float(np.percentile(latencies[mode], 95)) if scored else 0.0,
            queries=len(scored),
        )
        for mode in modes
    ]
    per_query = dict(ndcgs)
    return results, per_query
