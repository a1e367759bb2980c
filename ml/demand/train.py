"""Train the demand forecast: backtest every model, pick the best candidate, calibrate
its intervals, log the run to MLflow, register the model and pass it through the gate.

``evaluate`` is the model selection without MLflow; ``train`` is the job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lakehouse.exceptions import ForecastError
from lakehouse.settings import Settings
from ml import tracking
from ml.demand import plots
from ml.demand.backtest import (
    MODEL,
    ORIGIN,
    STEP,
    backtest,
    last_origins,
    wape_by,
    with_actuals,
)
from ml.demand.category import CategorySeasonal
from ml.demand.gate import Decision, decide
from ml.demand.intervals import Calibration, covered, cross_conformal
from ml.demand.models import BASELINES, Forecaster, GlobalBoosted, StatisticalFamily
from ml.demand.panel import DS, HORIZON, ID, FutureExog, validate_panel
from ml.demand.served import DemandModel, model_input
from ml.demand.warehouse import WarehouseEvaluation
from ml.demand.warehouse import evaluate as evaluate_warehouses

EXPERIMENT = "demand-forecast"
REGISTERED_MODEL = "demand_forecast"
ORIGINS = 8
WAREHOUSE_CALIBRATION = "warehouse_calibration.json"


def default_forecasters() -> list[Forecaster]:
    return [
        StatisticalFamily(candidates=("DynamicOptimizedTheta", "CrostonOptimized", "ADIDA")),
        GlobalBoosted(),
        CategorySeasonal(),
    ]


@dataclass(frozen=True)
class Evaluation:
    """What the backtest decided: every model's WAPE, the chosen candidate, and its
    backtest rows with out-of-sample intervals and actuals."""

    origins: list[pd.Timestamp]
    wape: dict[str, float]
    wape_by_origin: pd.DataFrame  # model x origin
    chosen: str
    backtest: pd.DataFrame  # the chosen model's rows: ... forecast, y, lower_80, upper_80

    @property
    def best_baseline(self) -> float:
        return min(self.wape[b] for b in BASELINES)

    @property
    def coverage(self) -> float:
        return float(covered(self.backtest).mean())

    def coverage_by_origin(self) -> pd.Series:
        return covered(self.backtest).groupby(self.backtest[ORIGIN]).mean()


def evaluate(
    panel: pd.DataFrame,
    future_exog: FutureExog,
    forecasters: Sequence[Forecaster],
    origins: int = ORIGINS,
) -> Evaluation:
    """Rolling-origin backtest of every model on the last ``origins`` origins; the
    candidate with the lowest WAPE is chosen (baselines are yardsticks, never chosen)."""
    cutoffs = last_origins(panel, origins)
    scored = with_actuals(backtest(panel, future_exog, forecasters, cutoffs), panel)
    overall = wape_by(scored, [MODEL])
    candidates = overall.drop(list(BASELINES), errors="ignore")
    if candidates.empty:
        raise ForecastError("no candidate model to choose: only baselines were backtested")
    chosen = str(candidates.idxmin())
    rows = scored[scored[MODEL] == chosen].reset_index(drop=True)
    return Evaluation(
        origins=cutoffs,
        wape={str(k): float(v) for k, v in overall.items()},
        wape_by_origin=wape_by(scored, [MODEL, ORIGIN]).unstack(ORIGIN),
        chosen=chosen,
        backtest=cross_conformal(rows),
    )


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    decision: Decision
    evaluation: Evaluation
    seconds: float
    warehouse: WarehouseEvaluation | None = None


def train(
    panel: pd.DataFrame,
    future_exog: FutureExog,
    settings: Settings,
    data_version: Mapping[str, Any],
    forecasters: Sequence[Forecaster] | None = None,
    origins: int = ORIGINS,
    warehouses: pd.DataFrame | None = None,
) -> TrainResult:
    """One training run: backtest, fit the chosen model on the whole panel, log it all to
    MLflow (experiment ``demand-forecast``), register a version of ``demand_forecast``
    and move ``champion`` to it only if the gate lets it. ``data_version`` says what the
    panel was read from (the Delta versions of the source tables, the feature service).
    ``warehouses``: the product x warehouse panel (:mod:`ml.demand.warehouse`); with it,
    the split of the chosen model's backtest is scored per warehouse and its interval
    calibration logged, for scoring to forecast each warehouse."""
    began = time.monotonic()
    panel = validate_panel(panel)
    forecasters = list(forecasters or default_forecasters())
    evaluation = evaluate(panel, future_exog, forecasters, origins)
    warehouse = None if warehouses is None else evaluate_warehouses(evaluation.backtest, warehouses)
    holder = next(f for f in forecasters if evaluation.chosen in f.names)
    served = DemandModel(
        forecaster=holder.fit(panel),
        model_name=evaluation.chosen,
        calibration=Calibration.fit(evaluation.backtest),
        horizon=HORIZON,
    )
    with tracking.run(settings, EXPERIMENT, evaluation.chosen) as run:
        _log(run, panel, evaluation, forecasters, data_version, settings)
        run.json("calibration.json", served.calibration.to_dict())
        if warehouse is not None:
            run.metrics(warehouse.metrics())
            run.json(WAREHOUSE_CALIBRATION, warehouse.calibration.to_dict())
        model_uri = run.model("model", served, _example(panel, future_exog))
        seconds = time.monotonic() - began
        run.metrics({"train_seconds": seconds})
    version = str(tracking.register(settings, model_uri, REGISTERED_MODEL, run.run_id).version)
    decision = _gate(settings, evaluation, version, run.run_id)
    return TrainResult(run.run_id, version, decision, evaluation, seconds, warehouse)


def _gate(settings: Settings, evaluation: Evaluation, version: str, run_id: str) -> Decision:
    current = tracking.champion(settings, REGISTERED_MODEL)
    champion_wape = None
    if current is not None:
        champion_wape = tracking.run_metrics(settings, str(current.run_id)).get("wape")
    decision = decide(
        wape=evaluation.wape[evaluation.chosen],
        coverage=evaluation.coverage,
        best_baseline_wape=evaluation.best_baseline,
        champion_wape=champion_wape,
        margin=settings.forecast_promotion_margin,
        band=(settings.forecast_coverage_min, settings.forecast_coverage_max),
    )
    if decision.promote:
        tracking.promote(settings, REGISTERED_MODEL, version)
        tags = {"promotion": "promoted", "promotion_reason": decision.reason}
    else:
        tags = {"promotion": "refused", "promotion_reason": decision.reason}
    tracking.tag(settings, REGISTERED_MODEL, version, run_id, tags)
    return decision


def _log(
    run: tracking.Run,
    panel: pd.DataFrame,
    evaluation: Evaluation,
    forecasters: Sequence[Forecaster],
    data_version: Mapping[str, Any],
    settings: Settings,
) -> None:
    chosen = evaluation.backtest
    params: dict[str, Any] = {
        "horizon": HORIZON,
        "origins": [f"{o:%Y-%m-%d}" for o in evaluation.origins],
        "models": [n for f in forecasters for n in f.names],
        "chosen_model": evaluation.chosen,
        "series": panel[ID].nunique(),
        "weeks": panel[DS].nunique(),
        "last_week": f"{panel[DS].max():%Y-%m-%d}",
        "promotion_margin": settings.forecast_promotion_margin,
        "coverage_band": [settings.forecast_coverage_min, settings.forecast_coverage_max],
    }
    params.update({f"data.{k}": v for k, v in data_version.items()})
    for f in forecasters:
        if isinstance(f, GlobalBoosted | CategorySeasonal):
            params.update({f"{f.name}.{k}": v for k, v in f.params().items()})
    run.params(params)
    run.json("data_version.json", dict(data_version))
    metrics = {f"wape.{m}": w for m, w in evaluation.wape.items()}
    metrics.update(
        {
            "wape": evaluation.wape[evaluation.chosen],
            "best_baseline_wape": evaluation.best_baseline,
            "coverage_80": evaluation.coverage,
        }
    )
    by_origin = evaluation.wape_by_origin.loc[evaluation.chosen]
    metrics.update({f"wape_origin.{o:%Y-%m-%d}": float(v) for o, v in by_origin.items()})
    metrics.update(
        {
            f"coverage_origin.{o:%Y-%m-%d}": float(v)
            for o, v in evaluation.coverage_by_origin().items()
        }
    )
    metrics.update({f"wape_h.{h}": float(v) for h, v in wape_by(chosen, [STEP]).items()})
    run.metrics(metrics)
    table = evaluation.wape_by_origin.copy()
    table.columns = [f"{o:%Y-%m-%d}" for o in table.columns]
    run.table("wape_by_model_and_origin.parquet", table.reset_index())
    run.table("backtest.parquet", chosen)
    band = (settings.forecast_coverage_min, settings.forecast_coverage_max)
    run.figure("plots/forecast_vs_actual.png", plots.forecast_vs_actual(panel, chosen))
    run.figure("plots/residuals.png", plots.residuals(chosen))
    run.figure("plots/coverage_by_origin.png", plots.coverage_by_origin(chosen, band))


def _example(panel: pd.DataFrame, future_exog: FutureExog) -> pd.DataFrame:
    """The model's input example: two series' whole history and their future weeks."""
    ids = panel[ID].drop_duplicates().head(2)
    history = panel[panel[ID].isin(ids)].reset_index(drop=True)
    future = future_exog(history[DS].max(), history.copy())
    return model_input(history, future[future[ID].isin(ids)])
