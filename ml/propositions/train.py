"""A propositions training run: the time-split backtest of the model and every baseline,
the model fitted on all the purchases, an MLflow run, a registered version, the gate.

The backtest trains on the purchases before the cutoff (eight complete weeks before the
data ends, :func:`ml.propositions.data.backtest_window`) and scores the eight weeks after
it. On the demo's data the generator's purchase propensities for the same weeks are the
ceiling, scored as the recommender ``oracle`` when the data directory holds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.settings import Settings
from ml import tracking
from ml.propositions import evaluate, recommenders
from ml.propositions.data import HORIZON_DAYS, Purchases, backtest_window
from ml.propositions.recommenders import ALSParams, Context, Scorer

EXPERIMENT = "client-propositions"
REGISTERED_MODEL = "client_propositions"
MODEL = "als_content"
ORACLE = "oracle"
SERVED_CANDIDATES = 50  # the served model's list per client, before today's rules cut it
OUTPUT = ("client_id", "rank", "product_id", "score", "reason")


# the recent purchases' baseline at its best: its half-life tried at 30, 60 and 90 days
# on seeds 7 and 42 (60 best, by less than 0.005 MAP@10)
REPEAT_HALF_LIFE_DAYS = 60.0


def baselines() -> dict[str, Scorer]:
    return {
        "global_popularity": recommenders.global_popularity,
        "segment_region_popularity": recommenders.segment_region_popularity,
        "repeat_purchases": recommenders.repeat_purchases(),
        "recent_repeat_purchases": recommenders.repeat_purchases(REPEAT_HALF_LIFE_DAYS),
    }


@dataclass(frozen=True)
class Backtest:
    cutoff: date
    end: date
    lists: pd.DataFrame  # the model's: client_id, rank, product_id, score, reason
    metrics: pd.DataFrame  # recommender, is_baseline, segment, clients, metrics, coverage

    def value(self, recommender: str, metric: str = "map_at_10") -> float:
        m = self.metrics
        row = m[(m["recommender"] == recommender) & (m["segment"] == evaluate.ALL_SEGMENTS)]
        return float(row[metric].iloc[0])

    @property
    def best_baseline(self) -> tuple[str, float]:
        m = self.metrics[self.metrics["is_baseline"] & (self.metrics["segment"] == "all")]
        best = m.sort_values("map_at_10", ascending=False).iloc[0]
        return str(best["recommender"]), float(best["map_at_10"])


@dataclass
class ServedPropositions:
    """The served model: each known client's best ``SERVED_CANDIDATES`` products as of
    the end of the data, and segment-region popularity for a client it has not seen.
    Input: ``client_id``, ``segment``, ``region``; output: :data:`OUTPUT`, best first."""

    lists: pd.DataFrame
    popular: pd.DataFrame  # segment, region, rank, product_id, score

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        known = self.lists[self.lists["client_id"].isin(frame["client_id"])]
        unseen = frame[~frame["client_id"].isin(self.lists["client_id"])]
        fallback = unseen[["client_id", "segment", "region"]].merge(
            self.popular, on=["segment", "region"], how="inner"
        )
        fallback = fallback.assign(reason=recommenders.POPULAR_NEAR_YOU)
        out = pd.concat([known, fallback[list(OUTPUT)]], ignore_index=True)
        return out.sort_values(["client_id", "rank"]).reset_index(drop=True)[list(OUTPUT)]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    promoted: bool
    reason: str
    backtest: Backtest
    seconds: float


def backtest(
    purchases: Purchases,
    clients_at: Callable[[date], pd.DataFrame],
    settings: Settings,
    params: ALSParams,
    embeddings: Callable[[list[int]], np.ndarray] | None,
) -> Backtest:
    """The model and every baseline trained before the cutoff, scored on the purchases of
    the ``HORIZON_DAYS`` after it."""
    cutoff, end = backtest_window(purchases.last_date)
    clients = clients_at(cutoff)
    ctx = Context(
        as_of=cutoff,
        history=purchases.before(cutoff),
        clients=clients,
        candidates=purchases.active_at(cutoff),
        embeddings=embeddings,
    )
    after = purchases.between(cutoff, end)
    truth = after.groupby("client_id")["product_id"].agg(set).to_dict()
    truth = {c: s for c, s in truth.items() if c in set(ctx.client_ids.tolist())}
    segments = clients.set_index("client_id")["segment"]
    n, cap = settings.propositions_top_n, settings.propositions_per_category
    rows = []
    lists = recommenders.top_n(ctx, recommenders.als_with_content(params)(ctx), n, cap)
    runs: list[tuple[str, bool, pd.DataFrame]] = [(MODEL, False, lists)]
    for name, scorer in baselines().items():
        runs.append((name, True, recommenders.top_n(ctx, scorer(ctx), n, None)))
    oracle = _oracle(settings, ctx, cutoff, end, n)
    if oracle is not None:
        runs.append((ORACLE, False, oracle))
    for name, is_baseline, proposed in runs:
        summary = evaluate.summary(proposed, truth, segments, len(ctx.product_ids))
        rows.append(summary.assign(recommender=name, is_baseline=is_baseline))
    return Backtest(cutoff, end, lists, pd.concat(rows, ignore_index=True))


def _oracle(
    settings: Settings, ctx: Context, cutoff: date, end: date, n: int
) -> pd.DataFrame | None:
    """The generator's propensities ranked, when the data directory holds them for this
    very window (the demo's data, not a real shop's)."""
    path = settings.ground_truth_path / "purchase_propensity.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    if truth.empty or (truth["window_start"].iloc[0], truth["window_end"].iloc[0]) != (cutoff, end):
        return None
    rows = pd.Index(ctx.client_ids).get_indexer(truth["client_id"])
    cols = pd.Index(ctx.product_ids).get_indexer(truth["product_id"])
    keep = (rows >= 0) & (cols >= 0)
    scores = np.full((len(ctx.client_ids), len(ctx.product_ids)), -1.0)
    scores[rows[keep], cols[keep]] = truth["expected_orders"].to_numpy()[keep]
    reasons = np.zeros(scores.shape, dtype=int)
    return recommenders.top_n(ctx, (scores, reasons), n, None)


def fit_served(
    purchases: Purchases,
    clients: pd.DataFrame,
    params: ALSParams,
    embeddings: Callable[[list[int]], np.ndarray] | None,
) -> ServedPropositions:
    """The model on every purchase, as of the day after the last one."""
    as_of = purchases.last_date + timedelta(days=1)
    ctx = Context(
        as_of=as_of,
        history=purchases.lines,
        clients=clients,
        candidates=purchases.active_at(as_of),
        embeddings=embeddings,
    )
    lists = recommenders.top_n(
        ctx, recommenders.als_with_content(params)(ctx), SERVED_CANDIDATES, None
    )
    groups = clients[["segment", "region"]].drop_duplicates().reset_index(drop=True)
    return ServedPropositions(lists, _popular_by_group(ctx, groups))


def _popular_by_group(ctx: Context, groups: pd.DataFrame) -> pd.DataFrame:
    scores = ctx.group_popularity(groups)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :SERVED_CANDIDATES]
    frames = []
    for i, group in enumerate(groups.itertuples(index=False)):
        frames.append(
            pd.DataFrame(
                {
                    "segment": group.segment,
                    "region": group.region,
                    "rank": np.arange(1, order.shape[1] + 1),
                    "product_id": ctx.product_ids[order[i]],
                    "score": scores[i, order[i]],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def train(
    purchases: Purchases,
    clients_at: Callable[[date | None], pd.DataFrame],
    settings: Settings,
    data_version: Mapping[str, Any],
    params: ALSParams | None = None,
    embeddings: Callable[[list[int]], np.ndarray] | None = None,
) -> TrainResult:
    """One training run: backtest, fit on everything, log to MLflow (experiment
    ``client-propositions``), register a version of ``client_propositions`` and move
    ``champion`` to it only if its MAP@10 beats the champion's and every baseline's."""
    began = time.monotonic()
    params = params or ALSParams()
    result = backtest(purchases, clients_at, settings, params, embeddings)
    current = clients_at(None)  # the online store's features, read once
    served = fit_served(purchases, current, params, embeddings)
    with tracking.run(settings, EXPERIMENT, MODEL) as run:
        _log(run, result, params, settings, data_version)
        example = current.head(3)[["client_id", "segment", "region"]]
        model_uri = run.model("model", served, example)
        seconds = time.monotonic() - began
        run.metrics({"train_seconds": seconds})
    version = str(tracking.register(settings, model_uri, REGISTERED_MODEL, run.run_id).version)
    promoted, reason = _gate(settings, result, version, run.run_id)
    return TrainResult(run.run_id, version, promoted, reason, result, seconds)


def _log(
    run: tracking.Run,
    result: Backtest,
    params: ALSParams,
    settings: Settings,
    data_version: Mapping[str, Any],
) -> None:
    run.params(
        {
            **{f"als.{k}": v for k, v in params.__dict__.items()},
            "cutoff": f"{result.cutoff:%Y-%m-%d}",
            "horizon_days": HORIZON_DAYS,
            "top_n": settings.propositions_top_n,
            "per_category": settings.propositions_per_category,
            "promotion_margin": settings.propositions_promotion_margin,
            **{f"data.{k}": v for k, v in data_version.items()},
        }
    )
    metrics: dict[str, float] = {}
    for row in result.metrics.itertuples(index=False):
        prefix = "" if row.recommender == MODEL else f"{row.recommender}."
        if row.is_baseline:
            prefix = f"baseline.{row.recommender}."
        scope = "" if row.segment == evaluate.ALL_SEGMENTS else f"segment.{row.segment}."
        for metric in (*evaluate.METRICS, "catalogue_coverage"):
            metrics[f"{prefix}{scope}{metric}"] = float(getattr(row, metric))
    metrics["best_baseline_map_at_10"] = result.best_baseline[1]
    run.metrics(metrics)
    run.table("backtest.parquet", result.lists)
    run.table("metrics.parquet", result.metrics)
    run.figure("plots/map_by_segment.png", _plot(result.metrics))


def _plot(metrics: pd.DataFrame) -> Any:
    from matplotlib import pyplot as plt

    table = metrics.pivot(index="segment", columns="recommender", values="map_at_10")
    figure, axes = plt.subplots(figsize=(9, 4))
    table.plot.bar(ax=axes)
    axes.set_ylabel("MAP@10")
    axes.set_title("propositions backtest: MAP@10 by segment")
    figure.tight_layout()
    return figure


def _gate(settings: Settings, result: Backtest, version: str, run_id: str) -> tuple[bool, str]:
    """Promote only a version whose MAP@10 is ``propositions_promotion_margin`` above
    every baseline's and the champion's (as the champion's run recorded it)."""
    margin = settings.propositions_promotion_margin
    value = result.value(MODEL)
    current = tracking.champion(settings, REGISTERED_MODEL)
    bars = {
        name: result.value(name)
        for name in result.metrics.loc[result.metrics["is_baseline"], "recommender"].unique()
    }
    if current is not None:
        recorded = tracking.run_metrics(settings, str(current.run_id)).get("map_at_10")
        if recorded is not None:
            bars[f"champion (version {current.version})"] = recorded
    broken = [
        f"MAP@10 {value:.4f} does not beat {name}'s {bar:.4f} by {margin:.0%}"
        for name, bar in bars.items()
        if value <= (1 + margin) * bar
    ]
    promoted = not broken
    reason = (
        "; ".join(broken)
        if broken
        else f"MAP@10 {value:.4f} beats "
        + ", ".join(f"{name} {bar:.4f}" for name, bar in bars.items())
    )
    if promoted:
        tracking.promote(settings, REGISTERED_MODEL, version)
    tracking.tag(
        settings,
        REGISTERED_MODEL,
        version,
        run_id,
        {"promotion": "promoted" if promoted else "refused", "promotion_reason": reason},
    )
    return promoted, reason
