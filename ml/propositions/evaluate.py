"""Ranking metrics of a backtest: MAP@10, nDCG@10, recall@10 and catalogue coverage.

A hit is any product the client bought in the horizon after the cutoff (a repeat
purchase counts), and only clients who bought something then are scored. AP@k divides by
``min(k, relevant)`` so a client with three purchases can reach 1; nDCG uses binary gains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.lake.ml_tables import ALL_SEGMENTS

K = 10
METRICS = ("map_at_10", "ndcg_at_10", "recall_at_10")


def per_client(lists: pd.DataFrame, truth: dict[int, set[int]], k: int = K) -> pd.DataFrame:
    """``client_id`` and the three metrics for every client in ``truth``; a client with
    no list scores 0."""
    ranked = (
        lists[lists["rank"] <= k]
        .sort_values(["client_id", "rank"])
        .groupby("client_id")["product_id"]
        .agg(list)
    )
    discounts = 1 / np.log2(np.arange(2, k + 2))
    rows = []
    for client, bought in truth.items():
        proposed = ranked.get(client, [])
        hits = np.array([p in bought for p in proposed], dtype=float)
        relevant = min(k, len(bought))
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1) if len(hits) else hits
        ideal = discounts[:relevant].sum()
        rows.append(
            (
                client,
                float((precision * hits).sum() / relevant),
                float((hits * discounts[: len(hits)]).sum() / ideal),
                float(hits.sum() / len(bought)),
            )
        )
    return pd.DataFrame(rows, columns=["client_id", *METRICS])


def summary(
    lists: pd.DataFrame,
    truth: dict[int, set[int]],
    segments: pd.Series,
    candidates: int,
) -> pd.DataFrame:
    """The metrics per client segment and over all clients (``ALL_SEGMENTS``): one row per
    segment with ``clients``, the mean metrics and ``catalogue_coverage`` (the share of
    the ``candidates`` proposed to at least one of the segment's clients)."""
    scored = per_client(lists, truth)
    scored["segment"] = segments.reindex(scored["client_id"]).fillna("unknown").to_numpy()
    lists = lists.assign(segment=segments.reindex(lists["client_id"]).fillna("unknown").to_numpy())
    out = []
    for segment, part in [(ALL_SEGMENTS, scored), *scored.groupby("segment")]:
        proposed = lists if segment == ALL_SEGMENTS else lists[lists["segment"] == segment]
        out.append(
            {
                "segment": segment,
                "clients": len(part),
                **{m: float(part[m].mean()) for m in METRICS},
                "catalogue_coverage": proposed["product_id"].nunique() / max(candidates, 1),
            }
        )
    return pd.DataFrame(out)
