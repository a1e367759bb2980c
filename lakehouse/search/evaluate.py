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

    With ``fresh_queries`` every mode starts with no query embedding remembered, so each
    is timed alike on queries it meets first (otherwise a mode run after another that
    embeds would find the embeddings made and look faster than it is)."""
    scored = [j for j in judged if j.grades]
    results: list[ModeScore] = []
    per_query: dict[Mode, list[float]] = {}
    for mode in modes:
        if fresh_queries:
            searcher.forget_queries()
        ndcgs, recalls, latencies = [], [], []
        for item in scored:
            start = time.perf_counter()
            hits = searcher.search(item.query, top=k, mode=mode)
            latencies.append((time.perf_counter() - start) * 1000)
            ranked = [h.product_id for h in hits]
            ndcgs.append(ndcg_at(ranked, item.grades, k))
            recalls.append(recall_at(ranked, item.grades, k))
        per_query[mode] = ndcgs
        results.append(
            ModeScore(
                mode=mode,
                ndcg=float(np.mean(ndcgs)) if ndcgs else 0.0,
                recall=float(np.mean(recalls)) if recalls else 0.0,
                latency_p50_ms=float(np.percentile(latencies, 50)) if latencies else 0.0,
                latency_p95_ms=float(np.percentile(latencies, 95)) if latencies else 0.0,
                queries=len(scored),
            )
        )
    return results, per_query
