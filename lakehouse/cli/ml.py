"""The `lakehouse ml` commands: the training and scoring jobs of the demand forecast and of
the propositions (``ml/``; ``--model``). Like every command group, it imports the jobs inside its
commands (Feast, MLflow and LightGBM take seconds to load)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import DataDir, settings_for

if TYPE_CHECKING:
    from lakehouse.settings import Settings

Model = Annotated[
    Literal["demand", "propositions"],
    typer.Option(
        "--model",
        help="demand: the weekly demand forecast; propositions: each client's top-N products",
    ),
]

app = typer.Typer(
    help="Models: train the demand forecast or the propositions (backtest, MLflow run, "
    "registry, promotion gate) and score with the registry's champion.",
    no_args_is_help=True,
)


@app.command("train")
def ml_train(data_dir: DataDir = None, model: Model = "demand") -> None:
    """Backtest the baselines and candidates (demand: on the last 8 origins; propositions:
    on the 8 weeks after the cutoff), log the run to MLflow, register the chosen model and
    move `champion` to it if it passes the promotion gate."""
    from ml.demand.jobs import train_job

    settings = settings_for(data_dir, existing=True)
    if model == "propositions":
        _train_propositions(settings)
        return
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
def ml_score(data_dir: DataDir = None, model: Model = "demand") -> None:
    """Forecast the 8 weeks after the last complete one with demand_forecast@champion (or
    propose each client's top-N with client_propositions@champion) and append the rows to
    the lake (published by the next `lakehouse build`)."""
    from ml.demand.jobs import score_job

    settings = settings_for(data_dir, existing=True)
    if model == "propositions":
        _score_propositions(settings)
        return
    with progress_bar() as progress:
        scoring = score_job(settings, progress)
    console.print(
        f"scored {scoring.forecasts:,} product-weeks ({scoring.warehouse_forecasts:,} "
        f"product-warehouse-weeks) with {scoring.model_name} "
        f"(demand_forecast version {scoring.model_version}), features as of "
        f"{scoring.features_as_of:%Y-%m-%d}; scoring run {scoring.run_id}. "
        "`lakehouse build` publishes them (mart_demand_forecast)."
    )


def _train_propositions(settings: Settings) -> None:
    from ml.propositions.jobs import train_job

    with progress_bar() as progress:
        result = train_job(settings, progress)
    backtest = result.backtest
    table = Table(
        "recommender",
        "MAP@10",
        "nDCG@10",
        "recall@10",
        "coverage",
        title=f"backtest: cutoff {backtest.cutoff}, purchases until {backtest.end} (excluded)",
    )
    overall = backtest.metrics[backtest.metrics["segment"] == "all"]
    for row in overall.sort_values("map_at_10", ascending=False).itertuples(index=False):
        kind = " (baseline)" if row.is_baseline else ""
        table.add_row(
            f"{row.recommender}{kind}",
            f"{row.map_at_10:.4f}",
            f"{row.ndcg_at_10:.4f}",
            f"{row.recall_at_10:.4f}",
            f"{row.catalogue_coverage:.1%}",
        )
    console.print(table)
    console.print(
        f"client_propositions version {result.version} in {result.seconds:.0f} s; "
        f"MLflow run {result.run_id}"
    )
    verdict = "[green]promoted to champion[/]" if result.promoted else "[yellow]refused[/]"
    console.print(f"{verdict}: {result.reason}")


def _score_propositions(settings: Settings) -> None:
    from ml.propositions.jobs import score_job

    with progress_bar() as progress:
        scoring = score_job(settings, progress)
    console.print(
        f"proposed {scoring.rows:,} products to {scoring.clients:,} clients with "
        f"client_propositions version {scoring.model_version}; scoring run {scoring.run_id}. "
        "`lakehouse build` publishes them (mart_client_recommendations)."
    )
