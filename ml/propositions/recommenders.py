"""The recommenders: the model (ALS + content + rules) and the baselines it must beat.

Every recommender scores a dense clients x candidates matrix for one :class:`Context`
(what was known at its ``as_of`` day); :func:`top_n` applies the business rules and keeps
each client's best ``n``. Scores only rank within a client: they are not probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy import sparse

from lakehouse.lake.ml_tables import REASONS

BY_CLIENTS_LIKE_YOU, NEW_IN_YOUR_CATEGORY, BOUGHT_BEFORE, POPULAR_NEAR_YOU = REASONS
POPULARITY_DAYS = 91  # popularity counts the lines of the last 13 weeks


@dataclass(frozen=True)
class Context:
    """What a recommender knows on ``as_of``: the purchases before it, the clients to
    serve (``client_id``, ``segment``, ``region``) and the products it may propose
    (``product_id``, ``category``)."""

    as_of: date
    history: pd.DataFrame
    clients: pd.DataFrame
    candidates: pd.DataFrame
    embeddings: Callable[[list[int]], np.ndarray] | None = None  # unit vectors per product

    @property
    def client_ids(self) -> np.ndarray:
        return self.clients["client_id"].to_numpy(dtype=np.int64)

    @property
    def product_ids(self) -> np.ndarray:
        return self.candidates["product_id"].to_numpy(dtype=np.int64)

    def age_days(self) -> np.ndarray:
        return (pd.Timestamp(self.as_of) - self.history["order_date"]).dt.days.to_numpy()

    def matrix(self, weights: np.ndarray) -> sparse.csr_matrix:
        """Clients x candidates, summing ``weights`` (one per history line); lines of
        other clients or products are left out."""
        rows = pd.Index(self.client_ids).get_indexer(self.history["client_id"])
        cols = pd.Index(self.product_ids).get_indexer(self.history["product_id"])
        keep = (rows >= 0) & (cols >= 0)
        shape = (len(self.client_ids), len(self.product_ids))
        return sparse.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=shape)

    def popularity(self) -> np.ndarray:
        """Lines per candidate over the last ``POPULARITY_DAYS``, every client's."""
        recent = self.history[self.age_days() <= POPULARITY_DAYS]
        counts = recent["product_id"].value_counts()
        return counts.reindex(self.product_ids, fill_value=0).to_numpy(dtype=float)

    def group_popularity(self, groups: pd.DataFrame | None = None) -> np.ndarray:
        """Per client (or per row of ``groups``: ``segment``, ``region``): the candidates'
        recent lines among clients of its segment and region; global popularity, scaled
        down, breaks ties and serves empty groups."""
        recent = self.history[self.age_days() <= POPULARITY_DAYS]
        known = self.clients.set_index("client_id")[["segment", "region"]]
        joined = recent.join(known, on="client_id", how="inner")
        counts = joined.groupby(["segment", "region", "product_id"]).size()
        table = counts.unstack("product_id", fill_value=0).reindex(
            columns=self.product_ids, fill_value=0
        )
        wanted = self.clients if groups is None else groups
        keys = pd.MultiIndex.from_frame(wanted[["segment", "region"]])
        per_row = table.reindex(keys, fill_value=0).to_numpy(dtype=float)
        global_ = self.popularity()
        return per_row + global_[None, :] / (global_.max() + 1) * 0.5


Scorer = Callable[[Context], tuple[np.ndarray, np.ndarray]]  # scores, reason index


def global_popularity(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    scores = np.tile(ctx.popularity(), (len(ctx.client_ids), 1))
    return scores, np.full(scores.shape, REASONS.index(POPULAR_NEAR_YOU))


def segment_region_popularity(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    scores = ctx.group_popularity()
    return scores, np.full(scores.shape, REASONS.index(POPULAR_NEAR_YOU))


def repeat_purchases(half_life_days: float | None = None) -> Scorer:
    """The client's own purchases first (most lines first; with ``half_life_days``, each
    line weighted by its age), then popularity."""

    def score(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        weights = np.ones(len(ctx.history))
        if half_life_days is not None:
            weights = 0.5 ** (ctx.age_days() / half_life_days)
        own = ctx.matrix(weights).toarray()
        popularity = ctx.popularity()
        scores = own * (popularity.max() + 1) + popularity[None, :]
        reasons = np.where(own > 0, REASONS.index(BOUGHT_BEFORE), REASONS.index(POPULAR_NEAR_YOU))
        return scores, reasons

    return score


@dataclass(frozen=True)
class ALSParams:
    """Chosen on seed 7's backtest (regularization 0.1 to 10, half-life 7 to 45 days,
    4 to 32 factors); the figures are reported on seed 42."""

    factors: int = 16
    regularization: float = 3.0
    iterations: int = 15
    half_life_days: float = 14.0  # a line's confidence halves every so many days
    min_buyers: int = 3  # fewer buyers: a new product, ranked by the content part
    content_rank: int = 5  # a new product as similar as can be enters at about this rank
    seed: int = 0


def als_with_content(params: ALSParams) -> Scorer:
    """Implicit ALS on ``log1p`` of the age-weighted lines (confidence weighting), a
    content part for new products, and segment-region popularity for clients without
    a purchase."""

    def score(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        confidence = ctx.matrix(0.5 ** (ctx.age_days() / params.half_life_days))
        confidence.data = np.log1p(confidence.data)
        with threadpool_limits(1, "blas"):  # implicit's own threads, not OpenBLAS's
            model = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                iterations=params.iterations,
                random_state=params.seed,
            )
            model.fit(confidence.tocsr().astype(np.float32), show_progress=False)
        scores = np.asarray(model.user_factors) @ np.asarray(model.item_factors).T
        bought = confidence.toarray() > 0
        reasons = np.where(bought, REASONS.index(BOUGHT_BEFORE), REASONS.index(BY_CLIENTS_LIKE_YOU))
        cold = ~bought.any(axis=1)  # no purchase: what is popular near them
        if cold.any():
            scores[cold] = ctx.group_popularity()[cold]
            reasons[cold] = REASONS.index(POPULAR_NEAR_YOU)
        _content(ctx, params, scores, reasons, bought)
        return scores, reasons

    return score


def _content(
    ctx: Context,
    params: ALSParams,
    scores: np.ndarray,
    reasons: np.ndarray,
    bought: np.ndarray,
) -> None:
    """New products (fewer than ``min_buyers`` buyers, so CF knows nothing of them) in a
    category the client buys: scored by the cosine of their embedding with the client's
    purchases' mean embedding, times the client's ``content_rank``-th best score."""
    buyers = (bought > 0).sum(axis=0)
    new = np.flatnonzero(buyers < params.min_buyers)
    if ctx.embeddings is None or new.size == 0:
        return
    vectors = ctx.embeddings(ctx.product_ids.tolist())
    profile = (bought.astype(float) @ vectors) / np.maximum(bought.sum(1, keepdims=True), 1)
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    similarity = (profile / np.maximum(norms, 1e-9)) @ vectors[new].T  # clients x new
    categories = ctx.candidates["category"].to_numpy()
    buys_category = np.stack([bought[:, categories == categories[j]].any(1) for j in new], 1)
    kth = -np.sort(-scores, axis=1)[:, params.content_rank - 1]
    proposed = buys_category & (similarity > 0) & (norms > 0)
    value = np.clip(kth, 0, None)[:, None] * similarity
    rows, cols = np.nonzero(proposed)
    scores[rows, new[cols]] = value[rows, cols]
    reasons[rows, new[cols]] = REASONS.index(NEW_IN_YOUR_CATEGORY)


def top_n(
    ctx: Context, scored: tuple[np.ndarray, np.ndarray], n: int, per_category: int | None
) -> pd.DataFrame:
    """Each client's best ``n`` candidates, at most ``per_category`` of one category:
    ``client_id``, ``rank`` (1 first), ``product_id``, ``score``, ``reason``."""
    scores, reasons = scored
    order = np.argsort(-scores, axis=1, kind="stable")
    categories = pd.factorize(ctx.candidates["category"])[0]
    ids = ctx.product_ids
    rows: dict[str, list[object]] = {k: [] for k in ("client_id", "rank", "product_id")}
    rows |= {"score": [], "reason": []}
    window = n if per_category is None else min(order.shape[1], n * 4)
    for i, client in enumerate(ctx.client_ids.tolist()):
        taken: list[int] = []
        per: dict[int, int] = {}
        for j in order[i, :window].tolist():
            c = int(categories[j])
            if per_category is not None and per.get(c, 0) >= per_category:
                continue
            per[c] = per.get(c, 0) + 1
            taken.append(j)
            if len(taken) == n:
                break
        rows["client_id"] += [client] * len(taken)
        rows["rank"] += list(range(1, len(taken) + 1))
        rows["product_id"] += ids[taken].tolist()
        rows["score"] += scores[i, taken].tolist()
        rows["reason"] += [REASONS[r] for r in reasons[i, taken].tolist()]
    return pd.DataFrame(rows)


def cut_by_rules(
    served: pd.DataFrame,
    clients: pd.DataFrame,
    candidates: pd.DataFrame,
    n: int,
    per_category: int | None,
    as_of: date,
) -> pd.DataFrame:
    """A served model's lists (``client_id``, ``product_id``, ``score``, ``reason``) cut
    by today's rules: only ``candidates`` (the products that may be proposed now), at
    most ``per_category`` of a category, the best ``n`` per client of ``clients``."""
    ctx = Context(as_of, pd.DataFrame(columns=["client_id", "product_id"]), clients, candidates)
    served = served[served["product_id"].isin(candidates["product_id"])]
    scores = np.full((len(ctx.client_ids), len(ctx.product_ids)), -np.inf)
    reasons = np.zeros(scores.shape, dtype=int)
    rows = pd.Index(ctx.client_ids).get_indexer(served["client_id"])
    cols = pd.Index(ctx.product_ids).get_indexer(served["product_id"])
    known = rows >= 0
    scores[rows[known], cols[known]] = served["score"].to_numpy()[known]
    reasons[rows[known], cols[known]] = [REASONS.index(r) for r in served["reason"][known]]
    lists = top_n(ctx, (scores, reasons), n, per_category)
    return lists[np.isfinite(lists["score"])].reset_index(drop=True)
