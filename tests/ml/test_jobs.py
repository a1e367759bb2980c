"""The demand jobs on the pipeline's path: a lake built and published by the gate, its
feature tables applied to Feast, a training run on Feast's point-in-time panel, scoring
with the champion, and the next gate run publishing the forecast marts.

The shop is small, so whether the first model beats the baselines by the gate's margin is
not certain: when the gate refuses it, the test moves ``champion`` by hand and says so
(tests/ml/test_promotion.py is where the gate's decisions are tested)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.features import apply
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake import ml_tables
from lakehouse.quality.gate import build_audit_publish
from lakehouse.settings import Settings
from ml import tracking
from ml.demand.dataset import load_panel
from ml.demand.jobs import score_job, train_job
from ml.demand.panel import HORIZON, WEEK
from ml.demand.train import REGISTERED_MODEL
from tests.quality.gate_support import lake_settings
from tests.support.demand import truth_panel
from tests.support.webhook import webhook

__all__ = ["webhook"]  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]

# more than a year and a half: lag 52 and 8 origins x 8 weeks of backtest
SHOP = GenerateParams(clients=150, products=20, days=560, snapshot_day=5)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = lake_settings(tmp_path_factory.mktemp("jobs") / "data")
    generate(settings, SHOP)
    ingest(settings)
    build_audit_publish(settings)
    apply(settings)
    return settings


def test_the_feature_store_panel_is_the_ground_truths(lake: Settings) -> None:
    dataset = load_panel(lake)
    mine = dataset.panel.set_index(["unique_id", "ds"])["y"]
    truth = truth_panel(lake.ground_truth_path).set_index(["unique_id", "ds"])["y"]
    common = mine.index.intersection(truth.index)
    assert len(common) >= 0.9 * len(truth)
    pd.testing.assert_series_equal(mine.loc[common], truth.loc[common], check_names=False)
    # weeks the truth has no sale of a product are zero rows of the panel, not missing
    assert (mine.drop(common) == 0).all()
    assert dataset.data_version["feature_service"] == "demand_forecast_v1"


def test_train_score_and_publish_the_forecast_marts(
    lake: Settings, webhook: tuple[str, list[dict]]
) -> None:
    result = train_job(lake)
    run = tracking.client(lake).get_run(result.run_id).data
    params = run.params
    assert params["data.feature_service"] == "demand_forecast_v1"
    assert params["data.warehouse_feature_service"] == "replenishment_v1"
    # the split per warehouse is scored against its own baselines, in the same run
    assert result.warehouse is not None and result.warehouse.rows > 0
    assert run.metrics["warehouse.wape"] == pytest.approx(result.warehouse.wape)
    assert {"warehouse.wape.mean_4w", "warehouse.wape.seasonal_naive"} <= set(run.metrics)
    assert params["data.publication_run_id"]  # the publication the features came from
    assert int(params["data.silver.order_item"]) >= 0
    if not result.decision.promote:  # a small shop: see the module's docstring
        tracking.client(lake).set_registered_model_alias(
            REGISTERED_MODEL, "champion", result.version
        )
    scoring = score_job(lake)
    products = load_panel(lake).panel["unique_id"].nunique()
    assert scoring.forecasts == products * HORIZON
    assert scoring.backtest_rows > 0
    _assert_warehouses_sum_to_their_product(lake, scoring.run_id)
    # a version's backtest is recorded once; a drift past the alert threshold is POSTed
    url, received = webhook
    alerting = lake.model_copy(update={"alert_webhook_url": url, "drift_alert_psi": 1e-9})
    again = score_job(alerting)
    assert again.backtest_rows == 0
    assert [a["event"] for a in received] == ["model_drift"]
    assert received[0]["version"] == result.version and received[0]["psi"]

    report = build_audit_publish(lake)
    assert report.outcome == "published", [c.check for c in report.blocking]
    with duckdb.connect(str(lake.published_warehouse), read_only=True) as con:
        served = con.execute(
            "select count(*), count(distinct product_id), min(model_version), "
            "max(model_version), min(lower_80 <= forecast_units and forecast_units <= upper_80) "
            "from marts.mart_demand_forecast"
        ).fetchone()
        origins = con.execute(
            "select count(distinct origin_week) from marts.mart_forecast_backtest"
        ).fetchone()
        replenishment = con.execute("select count(*) from marts.mart_replenishment").fetchone()
        lead_time = con.execute(
            "select product_id, warehouse_id, forecast_units_lead_time "
            "from marts.mart_replenishment"
        ).fetchall()
        monitoring = con.execute(
            "select count(distinct scoring_run_id), count(distinct feature), "
            "min(status) filter (where is_latest_run), max(psi) >= 0 "
            "from marts.mart_model_monitoring"
        ).fetchone()
    assert served == (products * HORIZON, products, result.version, result.version, True)
    assert origins is not None and origins[0] >= 8
    assert replenishment is not None and replenishment[0] > 0
    # the replenishment list's lead-time demand is the warehouse forecasts' first 2 weeks
    split = _warehouse_forecasts(lake, again.run_id)
    weeks = pd.to_datetime(split["week_start_date"])
    first_two = split[weeks <= weeks.min() + WEEK]
    expected = first_two.groupby(["product_id", "warehouse_id"])["forecast_units"].sum()
    for pid, wid, units in lead_time:
        assert units == pytest.approx(expected[(pid, wid)])
    assert monitoring is not None and monitoring[0] == 2 and monitoring[1] >= 2
    assert monitoring[2] in ("alert", "retrain") and monitoring[3]  # the alerting run's


def _warehouse_forecasts(settings: Settings, run_id: str) -> pd.DataFrame:
    table = DeltaTable(settings.table_uri(ml_tables.LAYER, ml_tables.WAREHOUSE_FORECASTS))
    frame = table.to_pandas()
    return frame[frame["scoring_run_id"] == run_id]


def _assert_warehouses_sum_to_their_product(settings: Settings, run_id: str) -> None:
    split = _warehouse_forecasts(settings, run_id)
    product = DeltaTable(settings.table_uri(ml_tables.LAYER, ml_tables.FORECASTS)).to_pandas()
    product = product[product["scoring_run_id"] == run_id]
    summed = split.groupby(["product_id", "week_start_date"])["forecast_units"].sum()
    own = product.set_index(["product_id", "week_start_date"])["forecast_units"]
    pd.testing.assert_series_equal(summed.sort_index(), own.sort_index(), check_names=False)
    assert (
        split.groupby(["product_id", "week_start_date"])["warehouse_share"]
        .sum()
        .round(9)
        .eq(1.0)
        .all()
    )
    assert (split["lower_80"] <= split["forecast_units"]).all()
    assert (split["forecast_units"] <= split["upper_80"]).all()


def test_training_without_published_features_says_what_to_run(tmp_path: Path) -> None:
    from lakehouse.exceptions import LakehouseError

    settings = lake_settings(tmp_path / "data")
    with pytest.raises(LakehouseError) as caught:
        train_job(settings)
    assert "lakehouse" in str(caught.value) and "\n" not in str(caught.value)
