"""The propositions jobs on the pipeline's path: a lake built and published by the gate,
Feast's client features (offline at the cutoff, online for scoring), a training run on
the published purchases, scoring with the champion, and the lake's ``ml`` tables holding
what the next gate run publishes."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.features import apply, materialize
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake import ml_tables
from lakehouse.quality.gate import build_audit_publish
from lakehouse.settings import Settings
from ml import tracking
from ml.propositions import data
from ml.propositions.jobs import score_job, train_job
from ml.propositions.train import MODEL, REGISTERED_MODEL
from tests.quality.gate_support import lake_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]

SHOP = GenerateParams(clients=300, products=60, days=200, snapshot_day=5, seed=5)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = lake_settings(tmp_path_factory.mktemp("propositions-jobs") / "data")
    generate(settings, SHOP)
    ingest(settings)
    build_audit_publish(settings)
    apply(settings)
    materialize(settings, start=datetime(2000, 1, 1, tzinfo=UTC), export_first=False)
    return settings


def _table(settings: Settings, name: str) -> pd.DataFrame:
    uri = settings.table_uri(ml_tables.LAYER, name)
    return DeltaTable(uri, storage_options=settings.lake_storage_options or None).to_pandas()


def test_train_and_score_on_the_published_marts(lake: Settings) -> None:
    purchases = data.load(lake)
    features = data.client_features(lake, purchases.clients[:50], None)
    assert set(features["segment"]) - {"unknown"} <= {
        "bargain",
        "family",
        "premium",
        "professional",
    }
    assert (features["segment"] != "unknown").sum() >= 25  # the online store knows them

    trained = train_job(lake)
    backtest = trained.backtest
    assert backtest.value(MODEL) > backtest.value("global_popularity")
    assert "oracle" in set(backtest.metrics["recommender"])  # the demo's ground truth is here
    if not trained.promoted:  # a small shop: the gate's own tests are elsewhere
        tracking.promote(lake, REGISTERED_MODEL, trained.version)

    scoring = score_job(lake)
    assert scoring.model_version == trained.version and scoring.backtest_rows > 0
    lists = _table(lake, ml_tables.RECOMMENDATIONS)
    assert set(lists["scoring_run_id"]) == {scoring.run_id}
    ranks = lists.groupby("client_id")["rank"].apply(lambda r: sorted(r.tolist()))
    assert all(r == list(range(1, len(r) + 1)) for r in ranks)
    assert ranks.map(len).max() == lake.propositions_top_n
    assert not lists.duplicated(["client_id", "product_id"]).any()
    candidates = purchases.active_at(None)
    assert set(lists["product_id"]) <= set(candidates["product_id"])
    per_category = lists.merge(candidates, on="product_id").groupby(["client_id", "category"])
    assert per_category.size().max() <= lake.propositions_per_category
    assert set(lists["reason"]) <= set(ml_tables.REASONS)
    assert set(lists["client_id"]) <= set(purchases.clients)

    recorded = _table(lake, ml_tables.RECOMMENDATION_BACKTESTS)
    assert set(recorded["model_version"]) == {trained.version}
    assert set(recorded["cutoff_date"]) == {backtest.cutoff}
    metrics = _table(lake, ml_tables.RECOMMENDATION_METRICS)
    overall = metrics[(metrics["recommender"] == MODEL) & (metrics["segment"] == "all")]
    assert overall["map_at_10"].iloc[0] == pytest.approx(backtest.value(MODEL))

    again = score_job(lake)  # the version's backtest is recorded once
    assert again.backtest_rows == 0
    assert len(_table(lake, ml_tables.RECOMMENDATION_BACKTESTS)) == len(recorded)
