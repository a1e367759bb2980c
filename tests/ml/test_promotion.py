"""The promotion gate: the champion alias moves only to a model that beats it and the
baselines with intervals in the band; a refusal is recorded with its reason; scoring
follows the alias in the same process."""

from __future__ import annotations

from ml import tracking
from ml.demand.gate import decide
from ml.demand.models import GlobalBoosted, StatisticalFamily
from ml.demand.panel import DS
from ml.demand.score import score
from ml.demand.train import REGISTERED_MODEL, train
from tests.ml.conftest import seasonal_panel

VERSION = {"delta_versions": {}, "feature_service": "demand_v1"}


def test_a_worse_challenger_is_refused_a_better_one_promoted(settings) -> None:
    panel, future = seasonal_panel()
    client = tracking.client(settings)  # tracking and registry on this test's store
    plain = StatisticalFamily(candidates=())

    def scored_version() -> set[str]:
        return set(score(panel, future(panel[DS].max(), panel), settings).forecast["model_version"])

    first = train(
        panel,
        future,
        settings,
        VERSION,
        [plain, GlobalBoosted(n_estimators=30, learning_rate=0.1, num_leaves=7, lags=(1, 2, 52))],
    )
    assert first.decision.promote, first.decision.reason
    assert scored_version() == {first.version}

    worse = train(panel, future, settings, VERSION, [StatisticalFamily(candidates=("ADIDA",))])
    assert not worse.decision.promote
    assert (
        str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)
        == first.version
    )
    tags = client.get_model_version(REGISTERED_MODEL, worse.version).tags
    assert tags["promotion"] == "refused"
    assert "champion's" in tags["promotion_reason"] and "baseline's" in tags["promotion_reason"]
    assert client.get_run(worse.run_id).data.tags["promotion_reason"] == tags["promotion_reason"]
    assert scored_version() == {first.version}

    better = train(
        panel,
        future,
        settings,
        VERSION,
        [plain, GlobalBoosted(n_estimators=150, learning_rate=0.1, num_leaves=15)],
    )
    assert better.decision.promote, better.decision.reason
    assert (
        str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)
        == better.version
    )
    assert scored_version() == {better.version}  # same process, nothing re-created


def test_coverage_outside_the_band_is_refused() -> None:
    decision = decide(0.2, 0.65, 0.3, None, margin=0.02, band=(0.75, 0.85))
    assert not decision.promote and "coverage 0.650 is outside" in decision.reason
    assert decide(0.2, 0.8, 0.3, 0.25, margin=0.02, band=(0.75, 0.85)).promote
    assert not decide(0.2, 0.8, 0.3, 0.201, margin=0.02, band=(0.75, 0.85)).promote
