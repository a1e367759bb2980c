"""The `lakehouse ml` commands: the demand forecast's training and scoring jobs (``ml/``),
on the feature store's panel. Like every command group, it imports the jobs inside its
commands (Feast, MLflow and LightGBM take seconds to load)."""

from __future__ import annotations

import typer
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import DataDir, settings_for

app = typer.Typer(
    help="Models: train the demand forecast (backtest, MLflow run, registry, promotion "
    "gate) and score with the registry's champion.",
    no_args_is_help=True,
)


@app.command("train")
def ml_train(data_dir: DataDir = None) -> None:
    """Backtest the baselines and candidates on the last 8 origins, log the run to MLflow,
    register the chosen model and move `champion` to it if it passes the promotion gate."""
    from ml.demand.jobs import train_job

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        result = train_job(settings, progress)
    evaluation = result.evaluation
    table = Table("model", "WAPE", title="backtest, last 8 origins x 8 weeks")
    for name, wape in sorted(evaluation.wape.items(), key=lambda item: item[1]):
        chosen = " (chosen)" if name == evaluation.chosen else ""
        table.add_row(f"{name}{chosen}", f"{wape:.3f}")
    console.print(table)
    if result.warehouse is not None:
        split = result.warehouse
        console.print(
            f"per warehouse (the forecast split by share): WAPE {split.wape:.3f} against "
            f"{split.best_baseline:.3f} for the best warehouse baseline, 80% interval "
            f"coverage {split.coverage:.1%}"
        )
    console.print(
        f"80% interval coverage {evaluation.coverage:.1%}; demand_forecast version "
        f"{result.version} in {result.seconds:.0f} s; MLflow run {result.run_id}"
    )
    verdict = "[green]promoted to champion[/]" if result.decision.promote else "[yellow]refused[/]"
    console.print(f"{verdict}: {result.decision.reason}")


@app.command("score")
def ml_score(data_dir: DataDir = None) -> None:
    """Forecast the 8 weeks after the last complete one with demand_forecast@champion and
    append the forecasts to the lake (published by the next `lakehouse build`)."""
    from ml.demand.jobs import score_job

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        scoring = score_job(settings, progress)
    console.print(
        f"scored {scoring.forecasts:,} product-weeks ({scoring.warehouse_forecasts:,} "
        f"product-warehouse-weeks) with {scoring.model_name} "
        f"(demand_forecast version {scoring.model_version}), features as of "
        f"{scoring.features_as_of:%Y-%m-%d}; scoring run {scoring.run_id}. "
        "`lakehouse build` publishes them (mart_demand_forecast)."
    )
