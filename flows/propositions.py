"""Flow: the propositions. Feature store (export, feast apply, materialize; skipped when
the forecast flow just did it) -> train (backtest against the baselines, MLflow run,
registry, promotion gate) -> score every client with the champion -> write-audit-publish,
which publishes the propositions marts. Weekly with training, daily without
(prefect.yaml)."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task

from flows._runtime import flow_progress, settings_for
from flows.forecast import feature_store_task
from flows.transform import transform_flow


@task(name="propositions-train")
def train_task(data_dir: str | None) -> dict[str, object]:
    from ml.propositions.jobs import train_job
    from ml.propositions.train import MODEL

    with flow_progress() as progress:
        result = train_job(settings_for(data_dir), progress)
    backtest = result.backtest
    name, best = backtest.best_baseline
    get_run_logger().info(
        "client_propositions version %s: MAP@10 %.4f against %.4f for the best baseline (%s), "
        "cutoff %s; %s",
        result.version,
        backtest.value(MODEL),
        best,
        name,
        backtest.cutoff,
        result.reason,
    )
    return {
        "version": result.version,
        "map_at_10": backtest.value(MODEL),
        "best_baseline": name,
        "best_baseline_map_at_10": best,
        "promoted": result.promoted,
        "reason": result.reason,
    }


@task(name="propositions-score")
def score_task(data_dir: str | None) -> dict[str, object]:
    from ml.propositions.jobs import score_job

    with flow_progress() as progress:
        scoring = score_job(settings_for(data_dir), progress)
    get_run_logger().info(
        "proposed %s products to %s clients with version %s",
        f"{scoring.rows:,}",
        f"{scoring.clients:,}",
        scoring.model_version,
    )
    return {"run_id": scoring.run_id, "version": scoring.model_version, "rows": scoring.rows}


@flow(name="propositions", log_prints=True)
def propositions_flow(
    data_dir: str | None = None,
    train: bool = True,
    feature_store: bool = True,
    materialize_from: datetime | None = None,
    docs: bool = False,
) -> dict[str, object]:
    """``train``: backtest and register a new version first (else score with the current
    champion); ``feature_store``: export, apply and materialize the features first."""
    if feature_store:
        feature_store_task(data_dir, materialize_from)
    trained = train_task(data_dir) if train else None
    scored = score_task(data_dir)
    published = transform_flow(data_dir=data_dir, docs=docs)
    return {"trained": trained, "scored": scored, "published": published}


if __name__ == "__main__":
    propositions_flow()
