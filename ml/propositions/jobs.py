"""The propositions jobs as the pipeline runs them: train (backtest, MLflow run, registry,
gate) on the published purchases and Feast's client features, or score every current
client with ``client_propositions@champion`` and append the lists (and, once per version,
its backtest and metrics) to the lake's ``ml`` tables for dbt to publish.

The feature tables must be published and exported and the Feast repository applied and
materialized first (``lakehouse features apply`` / ``materialize``); the flows do it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from lakehouse.lake import delta, ml_tables
from lakehouse.progress import Progress
from lakehouse.quality.history import last_served_run
from lakehouse.settings import Settings
from ml import tracking
from ml.propositions import data, recommenders
from ml.propositions.train import REGISTERED_MODEL, TrainResult, train


@dataclass(frozen=True)
class Scoring:
    run_id: str
    model_version: str
    clients: int
    rows: int
    backtest_rows: int  # appended now (0 when the version's backtest was recorded already)
    features_as_of: datetime


def _embeddings(settings: Settings):  # type: ignore[no-untyped-def]
    """Product id -> unit vector of its current text (the search's embedder and document)."""
    from lakehouse.search.catalog import document, published_products
    from lakehouse.search.embed import embedder

    products = published_products(settings).to_pylist()
    vectors = embedder().encode([document(p) for p in products])
    row_of = {p["product_id"]: i for i, p in enumerate(products)}
    width = vectors.shape[1]

    def lookup(ids: list[int]) -> np.ndarray:
        out = np.zeros((len(ids), width))
        for i, pid in enumerate(ids):
            if pid in row_of:
                out[i] = vectors[row_of[pid]]
        return out

    return lookup


def _clients_at(settings: Settings, clients: list[int]):  # type: ignore[no-untyped-def]
    def at(day: date | None) -> pd.DataFrame:
        return data.client_features(settings, clients, day)

    return at


def train_job(settings: Settings, progress: Progress | None = None) -> TrainResult:
    """Backtest the model and the baselines on the published purchases, register the
    model and let the gate decide on ``champion``."""
    task = progress.add_task("training the propositions", total=1) if progress else 0
    purchases = data.load(settings)
    version: dict[str, object] = {
        "publication_run_id": last_served_run(settings),
        "feature_service": data.SERVICE,
    }
    found = delta.open_table(
        settings.table_uri("silver", "order_item"), settings.lake_storage_options
    )
    version["silver.order_item"] = None if found is None else found.version()
    result = train(
        purchases,
        _clients_at(settings, purchases.clients),
        settings,
        version,
        embeddings=_embeddings(settings),
    )
    if progress is not None:
        progress.advance(task)
    return result


def _recorded_versions(settings: Settings) -> set[str]:
    table = delta.open_table(
        settings.table_uri(ml_tables.LAYER, ml_tables.RECOMMENDATION_BACKTESTS),
        settings.lake_storage_options,
    )
    if table is None:
        return set()
    versions = table.to_pyarrow_table(columns=["model_version"]).column("model_version")
    return set(versions.unique().to_pylist())


def score_job(settings: Settings, progress: Progress | None = None) -> Scoring:
    """Every current client's top-N with the champion: the served model's list, cut by
    today's rules (active, in stock, at most ``propositions_per_category`` a category)."""
    task = progress.add_task("proposing to every client", total=1) if progress else 0
    purchases = data.load(settings)
    clients = data.client_features(settings, purchases.clients, None)
    loaded = tracking.load_champion(settings, REGISTERED_MODEL)
    served = loaded.predict(clients[["client_id", "segment", "region"]])
    as_of_day = purchases.last_date + timedelta(days=1)
    lists = recommenders.cut_by_rules(
        served,
        clients,
        purchases.active_at(None),
        settings.propositions_top_n,
        settings.propositions_per_category,
        as_of_day,
    )
    now = datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    as_of = datetime.combine(as_of_day, time(), tzinfo=UTC)
    out = lists.assign(
        scoring_run_id=run_id,
        model_name=REGISTERED_MODEL,
        model_version=loaded.version,
        features_as_of=as_of,
        scored_at=now,
        rank=lists["rank"].astype("int32"),
    )
    ml_tables.append(settings, ml_tables.RECOMMENDATIONS, pa.Table.from_pandas(out))
    backtest_rows = 0
    if loaded.version not in _recorded_versions(settings):
        backtest_rows = _record_backtest(settings, loaded.version, loaded.run_id, now)
    if progress is not None:
        progress.advance(task)
    return Scoring(
        run_id, loaded.version, lists["client_id"].nunique(), len(out), backtest_rows, as_of
    )


def _record_backtest(settings: Settings, version: str, run_id: str, now: datetime) -> int:
    """The champion's backtest lists and metrics, from its training run's artefacts."""
    params = tracking.client(settings).get_run(run_id).data.params
    cutoff = date.fromisoformat(params["cutoff"])
    lists = tracking.artifact_table(settings, run_id, "backtest.parquet")
    backtest = lists.assign(
        model_version=version,
        cutoff_date=cutoff,
        recorded_at=now,
        rank=lists["rank"].astype("int32"),
    )
    ml_tables.append(settings, ml_tables.RECOMMENDATION_BACKTESTS, pa.Table.from_pandas(backtest))
    metrics = tracking.artifact_table(settings, run_id, "metrics.parquet")
    metrics = metrics.assign(
        model_version=version,
        cutoff_date=cutoff,
        horizon_days=np.int32(data.HORIZON_DAYS),
        recorded_at=now,
    )
    ml_tables.append(settings, ml_tables.RECOMMENDATION_METRICS, pa.Table.from_pandas(metrics))
    return len(backtest)
