"""A training run logs what the issue lists, read back through MLflow's own client, and
scoring with the champion returns the forecast and backtest frames of the marts."""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient
from mlflow.models import Model

from ml import tracking
from ml.demand.models import GlobalBoosted, StatisticalFamily
from ml.demand.panel import DS, HORIZON, ID
from ml.demand.score import BACKTEST_COLUMNS, FORECAST_COLUMNS, score
from ml.demand.train import EXPERIMENT, REGISTERED_MODEL, train
from tests.support.demand import AnnouncedFuture

DATA_VERSION = {"delta_versions": {"order_item": 7, "orders": 9}, "feature_service": "demand_v1"}


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_a_run_logs_params_metrics_plots_and_model(shop_truth, shop_panel, settings) -> None:
    future = AnnouncedFuture(shop_truth)
    forecasters = [StatisticalFamily(candidates=("ADIDA",)), GlobalBoosted(n_estimators=30)]
    result = train(shop_panel, future, settings, DATA_VERSION, forecasters)

    client = tracking.client(settings)  # tracking and registry on this test's store
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.info.artifact_uri.startswith(settings.mlflow_artifacts_uri)
    params, metrics = run.data.params, run.data.metrics
    assert params["data.feature_service"] == "demand_v1"
    assert params["data.delta_versions"] == '{"order_item": 7, "orders": 9}'
    assert params["chosen_model"] == result.evaluation.chosen
    assert params["horizon"] == str(HORIZON) and params["lightgbm.n_estimators"] == "30"
    for model in ("seasonal_naive", "mean_last_4", "ADIDA", "lightgbm"):
        assert 0 < metrics[f"wape.{model}"] < 2
    assert metrics["wape"] == metrics[f"wape.{result.evaluation.chosen}"]
    assert metrics["best_baseline_wape"] == min(
        metrics["wape.seasonal_naive"], metrics["wape.mean_last_4"]
    )
    origins = [f"{o:%Y-%m-%d}" for o in result.evaluation.origins]
    assert len(origins) == 8
    for origin in origins:
        assert 0 < metrics[f"wape_origin.{origin}"] < 2
        assert 0 <= metrics[f"coverage_origin.{origin}"] <= 1
    assert 0.6 < metrics["coverage_80"] < 0.95
    assert {f"wape_h.{h}" for h in range(1, HORIZON + 1)} <= set(metrics)

    artifacts = _artifacts(client, result.run_id)
    assert {
        "plots/forecast_vs_actual.png",
        "plots/residuals.png",
        "plots/coverage_by_origin.png",
        "backtest.parquet",
        "wape_by_model_and_origin.parquet",
        "data_version.json",
        "calibration.json",
    } <= artifacts

    version = client.get_model_version(REGISTERED_MODEL, result.version)
    assert version.run_id == result.run_id
    assert version.tags["promotion"] in ("promoted", "refused")
    model = Model.load(f"models:/{REGISTERED_MODEL}/{result.version}")
    assert model.signature is not None and model.saved_input_example_info is not None
    inputs = {c.name for c in model.signature.inputs.inputs}
    assert {ID, DS, "y", "avg_unit_price", "promo_discount_pct"} <= inputs


def test_score_returns_the_marts_frames(shop_truth, shop_panel, settings) -> None:
    future = AnnouncedFuture(shop_truth)
    result = train(shop_panel, future, settings, DATA_VERSION, [StatisticalFamily(("ADIDA",))])
    if not result.decision.promote:  # ADIDA may not beat the baselines here: promote by hand
        tracking.promote(settings, REGISTERED_MODEL, result.version)
    version = result.version

    last = shop_panel[DS].max()
    scored = score(shop_panel, future(last, shop_panel), settings)
    forecast, backtest = scored.forecast, scored.backtest
    assert tuple(forecast.columns) == FORECAST_COLUMNS
    assert len(forecast) == shop_panel[ID].nunique() * HORIZON
    assert set(forecast["product_id"]) == set(shop_panel[ID])
    weeks = pd.date_range(last, periods=HORIZON + 1, freq="W-MON")[1:].date
    assert sorted(forecast["week_start_date"].unique()) == list(weeks)
    assert (forecast["lower_80"] >= 0).all()
    assert (forecast["lower_80"] <= forecast["forecast_units"]).all()
    assert (forecast["forecast_units"] <= forecast["upper_80"]).all()
    assert (forecast["model_version"] == version).all()
    assert (forecast["model_name"] == "ADIDA").all()
    assert tuple(backtest.columns) == BACKTEST_COLUMNS
    assert backtest["origin_week"].nunique() == 8
    truth = shop_panel.assign(week_start_date=shop_panel[DS].dt.date, product_id=shop_panel[ID])
    joined = backtest.merge(truth, on=["product_id", "week_start_date"])
    assert len(joined) == len(backtest) and (joined["actual_units"] == joined["y"]).all()
