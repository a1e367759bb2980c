"""Flow: the demand forecast. Feature store (export the published feature tables, feast
apply, materialize the online store) -> train (backtest, MLflow run, registry, promotion
gate) -> score with the champion (and measure drift: above ``drift_retrain_psi`` it
trains again and scores with what the gate lets through) -> write-audit-publish, which
publishes the forecast marts. Weekly with training, daily without (prefect.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task

from flows._runtime import flow_progress, settings_for
from flows.transform import transform_flow


@task(name="feature-store")
def feature_store_task(data_dir: str | None, materialize_from: datetime | None) -> dict[str, int]:
    from lakehouse.features import apply, materialize

    settings = settings_for(data_dir)
    with flow_progress() as progress:
        exported = apply(settings, progress)  # exports the published feature tables first
        materialize(settings, progress=progress, start=materialize_from, export_first=False)
        return exported


@task(name="train")
def train_task(data_dir: str | None) -> dict[str, object]:
    from ml.demand.jobs import train_job

    with flow_progress() as progress:
        result = train_job(settings_for(data_dir), progress)
    evaluation = result.evaluation
    get_run_logger().info(
        "demand_forecast version %s (%s): WAPE %.3f, best baseline %.3f, coverage %.1f%%; %s",
        result.version,
        evaluation.chosen,
        evaluation.wape[evaluation.chosen],
        evaluation.best_baseline,
        100 * evaluation.coverage,
        result.decision.reason,
    )
    if result.warehouse is not None:
        get_run_logger().info(
            "per warehouse: WAPE %.3f, best warehouse baseline %.3f, coverage %.1f%%",
            result.warehouse.wape,
            result.warehouse.best_baseline,
            100 * result.warehouse.coverage,
        )
    return {
        "version": result.version,
        "model": evaluation.chosen,
        "wape": evaluation.wape[evaluation.chosen],
        "best_baseline_wape": evaluation.best_baseline,
        "coverage": evaluation.coverage,
        "promoted": result.decision.promote,
        "reason": result.decision.reason,
    }


@task(name="score")
def score_task(data_dir: str | None) -> dict[str, object]:
    from ml.demand.jobs import score_job

    with flow_progress() as progress:
        scoring = score_job(settings_for(data_dir), progress)
    feature, psi = scoring.worst_drift
    get_run_logger().info(
        "scored %s product-weeks (%s per warehouse) with version %s; highest drift: %s (PSI %.3f)",
        f"{scoring.forecasts:,}",
        f"{scoring.warehouse_forecasts:,}",
        scoring.model_version,
        feature,
        psi,
    )
    return {"run_id": scoring.run_id, "version": scoring.model_version, "retrain": scoring.retrain}


@flow(name="forecast", log_prints=True)
def forecast_flow(
    data_dir: str | None = None,
    train: bool = True,
    materialize_from: datetime | None = None,
    docs: bool = False,
    publish: bool = True,
) -> dict[str, object]:
    """``train``: backtest and register a new version first (else score with the current
    champion); ``materialize_from``: load the online store from this time (default:
    Feast's incremental materialization); ``publish``: write-audit-publish at the end
    (the demo leaves it to the propositions flow that follows)."""
    feature_store_task(data_dir, materialize_from)
    trained = train_task(data_dir) if train else None
    scored = score_task(data_dir)
    if scored["retrain"] and trained is None:  # drift above drift_retrain_psi
        get_run_logger().warning("the inputs drifted past drift_retrain_psi: training again")
        trained = train_task(data_dir)
        scored = score_task(data_dir)
    published = transform_flow(data_dir=data_dir, docs=docs) if publish else None
    return {"trained": trained, "scored": scored, "published": published}


def since_the_beginning() -> datetime:
    """A ``materialize_from`` that loads every entity's latest row, however old the data
    (the demo's shop is years in the past)."""
    return datetime(2000, 1, 1, tzinfo=UTC)


if __name__ == "__main__":
    forecast_flow()
