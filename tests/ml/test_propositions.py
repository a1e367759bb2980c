"""The propositions on a small generated shop: the model against every baseline and the
generator's oracle in the same backtest, a control that destroys what it learns from,
the metrics on a hand-counted case, the business rules, and the registry's gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.ml_tables import REASONS
from lakehouse.settings import Settings, load_settings
from ml import tracking
from ml.propositions import evaluate, recommenders
from ml.propositions.recommenders import ALSParams, Context
from ml.propositions.train import MODEL, ORACLE, REGISTERED_MODEL, backtest, train
from tests.support.purchases import clients_at, truth_purchases

# enough clients and products for tastes to show, and half a year of history
SHOP = GenerateParams(clients=500, products=120, days=240, seed=11)
VERSION = {"source": "ground truth"}


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("propositions"))
    generate(settings, SHOP)
    return settings.ground_truth_path


@pytest.fixture
def settings_on(truth: Path, tmp_path: Path) -> Settings:
    """A fresh MLflow store, with the shop's ground truth where the oracle is read."""
    settings = load_settings(data_dir=tmp_path / "data")
    settings.ground_truth_path.parent.mkdir(parents=True, exist_ok=True)
    settings.ground_truth_path.symlink_to(truth, target_is_directory=True)
    return settings


def test_the_model_beats_every_baseline_and_the_oracle_beats_it(
    truth: Path, settings_on: Settings
) -> None:
    result = backtest(truth_purchases(truth), clients_at(truth), settings_on, ALSParams(), None)
    model = result.value(MODEL)
    assert model >= 1.5 * result.value("global_popularity")
    assert model >= 1.2 * result.value("repeat_purchases")
    assert model > result.value("recent_repeat_purchases")
    assert model > result.value("segment_region_popularity")
    assert result.value(ORACLE) > model  # the propensities the orders were drawn from
    segments = set(result.metrics["segment"])
    assert {"all", "bargain", "family", "premium", "professional"} <= segments
    assert (result.end - result.cutoff).days == 56 and result.cutoff.weekday() == 0


def test_shuffled_clients_leave_the_model_nothing_to_learn(
    truth: Path, settings_on: Settings
) -> None:
    """Control: the same purchases with each line given a random client (tastes gone,
    the days and products kept) and the model no longer beats the recent purchases'
    baseline on the real hits."""
    purchases = truth_purchases(truth)
    rng = np.random.default_rng(0)
    history = purchases.lines.copy()
    cutoff = pd.Timestamp(backtest_cutoff(purchases))
    before = history["order_date"] < cutoff
    history.loc[before, "client_id"] = rng.permutation(history.loc[before, "client_id"].to_numpy())
    shuffled = type(purchases)(history, purchases.products, purchases.clients)
    result = backtest(shuffled, clients_at(truth), settings_on, ALSParams(), None)
    real = backtest(purchases, clients_at(truth), settings_on, ALSParams(), None)
    assert result.value(MODEL) < 0.6 * real.value(MODEL)


def backtest_cutoff(purchases) -> object:  # type: ignore[no-untyped-def]
    from ml.propositions.data import backtest_window

    return backtest_window(purchases.last_date)[0]


def test_the_metrics_on_a_hand_counted_case() -> None:
    lists = pd.DataFrame(
        {"client_id": [1, 1, 1, 2, 2], "rank": [1, 2, 3, 1, 2], "product_id": [10, 11, 12, 20, 21]}
    )
    truth = {1: {10, 12, 99}, 2: {30}, 3: {10}}
    scored = evaluate.per_client(lists, truth).set_index("client_id")
    # client 1: hits at 1 and 3 -> (1/1 + 2/3) / min(10, 3)
    assert scored.loc[1, "map_at_10"] == pytest.approx((1 + 2 / 3) / 3)
    assert scored.loc[1, "recall_at_10"] == pytest.approx(2 / 3)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert scored.loc[1, "ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(4)) / ideal)
    assert scored.loc[2].sum() == 0 and scored.loc[3].sum() == 0  # no hit, no list
    summary = evaluate.summary(lists, truth, pd.Series({1: "a", 2: "a", 3: "b"}), 10)
    overall = summary.set_index("segment").loc["all"]
    assert overall["clients"] == 3 and overall["catalogue_coverage"] == pytest.approx(0.5)


def _context() -> Context:
    """Two categories, a product too new to have buyers, a client without a purchase."""
    history = pd.DataFrame(
        {
            "client_id": [1, 1, 2, 2, 3, 3, 1, 2],
            "product_id": [1, 2, 1, 2, 1, 3, 4, 4],
            "order_date": pd.to_datetime(["2025-01-01"] * 8),
            "quantity": 1.0,
        }
    )
    clients = pd.DataFrame(
        {"client_id": [1, 2, 3, 4], "segment": ["a", "a", "b", "b"], "region": "north"}
    )
    candidates = pd.DataFrame(
        {"product_id": [1, 2, 3, 4, 5], "category": ["x", "x", "x", "y", "y"]}
    )

    def vectors(ids: list[int]) -> np.ndarray:  # the category as the embedding
        return np.array([[1.0, 0.0] if i <= 3 else [0.0, 1.0] for i in ids])

    return Context(pd.Timestamp("2025-01-10").date(), history, clients, candidates, vectors)


def test_the_rules_cap_a_category_and_explain_each_proposition() -> None:
    ctx = _context()
    params = ALSParams(factors=2, min_buyers=1, iterations=5, content_rank=1)
    scores, reasons = recommenders.als_with_content(params)(ctx)
    lists = recommenders.top_n(ctx, (scores, reasons), 3, 2)
    assert set(lists["reason"]) <= set(REASONS)
    assert lists.groupby("client_id")["rank"].apply(list).tolist() == [[1, 2, 3]] * 4
    categories = lists.merge(ctx.candidates, on="product_id")
    assert categories.groupby(["client_id", "category"]).size().max() <= 2
    cold = lists[lists["client_id"] == 4]
    assert set(cold["reason"]) == {recommenders.POPULAR_NEAR_YOU}
    mine = lists[lists["client_id"] == 1].set_index("product_id")["reason"]
    assert mine.get(1) == recommenders.BOUGHT_BEFORE
    # product 5 has no buyer: scored by content for the buyers of category y only, as
    # similar as their purchases are to it (client 1 bought two x and one y)
    new = REASONS.index(recommenders.NEW_IN_YOUR_CATEGORY)
    assert reasons[:2, 4].tolist() == [new, new] and reasons[2, 4] != new
    best = scores.max(axis=1)
    assert scores[0, 4] == pytest.approx(best[0] * (1 / np.sqrt(5)))
    assert scores[1, 4] == pytest.approx(best[1] * (1 / np.sqrt(5)))


def test_the_champion_moves_only_to_a_better_model(truth: Path, settings_on: Settings) -> None:
    purchases = truth_purchases(truth)
    first = train(purchases, clients_at(truth), settings_on, VERSION)
    assert first.promoted, first.reason
    worse = train(
        purchases, clients_at(truth), settings_on, VERSION, ALSParams(factors=1, iterations=1)
    )
    assert not worse.promoted
    assert "champion (version 1)" in worse.reason
    client = tracking.client(settings_on)
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
    assert str(champion.version) == first.version
    assert client.get_model_version(REGISTERED_MODEL, worse.version).tags["promotion"] == "refused"
    served = tracking.load_champion(settings_on, REGISTERED_MODEL)
    known = int(purchases.lines["client_id"].iloc[0])
    frame = pd.DataFrame(
        {"client_id": [known, 10**9], "segment": ["family", "premium"], "region": "north"}
    )
    lists = served.predict(frame)
    assert set(lists["client_id"]) == {known, 10**9}
    stranger = lists[lists["client_id"] == 10**9]
    assert set(stranger["reason"]) == {recommenders.POPULAR_NEAR_YOU}
    assert stranger["rank"].tolist() == list(range(1, len(stranger) + 1))


def test_the_served_lists_are_cut_by_the_rules_of_the_day() -> None:
    served = pd.DataFrame(
        {
            "client_id": [1, 1, 1, 1, 1, 9],
            "product_id": [1, 2, 3, 4, 7, 1],  # 7: no longer on sale
            "score": [5.0, 4.0, 3.0, 2.0, 9.0, 1.0],
            "reason": [recommenders.BOUGHT_BEFORE] * 6,
        }
    )
    clients = pd.DataFrame({"client_id": [1, 2], "segment": "a", "region": "north"})
    candidates = pd.DataFrame({"product_id": [1, 2, 3, 4], "category": ["x", "x", "x", "y"]})
    day = pd.Timestamp("2025-01-10").date()
    lists = recommenders.cut_by_rules(served, clients, candidates, 3, 2, day)
    assert lists["product_id"].tolist() == [1, 2, 4]  # not 7, and 3 is a third x
    assert lists["rank"].tolist() == [1, 2, 3] and set(lists["client_id"]) == {1}
