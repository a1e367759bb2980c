"""The demand forecast at the default scale against its yardsticks, in one run: every
candidate and both baselines (seasonal naive, mean of the last 4 weeks) backtested on
the same last 8 origins, and the generator's oracle (the expected units the shop sampled
from) scored on exactly the same origin x target-week rows, as the floor.

The panel and the promotions as announced at each origin come from the generated
shop's ground truth (``tests/support/demand.py``); the pipeline's path reads them from
Feast instead. Training (backtest, fit, MLflow run, registry, gate) and scoring with
the champion are timed on their own, with the machine's load at the start.

The issue's bar: the champion's WAPE at most 0.80 x the better baseline's, 80%
intervals covering 75-85% of the actuals, training plus scoring within 3 minutes.

Usage: ``python -m bench.forecast [--data-dir DIR] [--seed 42]``: generates the default
shop under DIR once (about a minute) and reuses it. Results: ``bench/results/
forecast-seed<seed>.json`` and a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import record
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import load_settings
from ml.demand.models import BASELINES
from ml.demand.panel import DS, Y
from ml.demand.score import score
from ml.demand.train import train
from tests.support.demand import (
    AnnouncedFuture,
    oracle_forecasts,
    truth_panel,
    warehouse_truth_panel,
)

DATA = Path(".lakehouse") / "bench" / "forecast"
BAR = 0.80  # the champion's WAPE over the better baseline's, at most
console = Console()


def default_shop(data_dir: Path, seed: int) -> Path:
    """The ground truth of a default-scale shop under ``data_dir``, generated once."""
    settings = load_settings(data_dir=data_dir, profile="local", pii_key="f" * 32)
    truth = settings.ground_truth_path
    # a shop generated before the oracle wrote the propensities is an older generator's
    if not (truth / "purchase_propensity.parquet").exists():
        console.print(f"generating the default shop (seed {seed}) under {data_dir} (once)")
        generate(settings, GenerateParams(seed=seed), force=True)
    return truth


def run(data_dir: Path, seed: int) -> dict[str, Any]:
    truth = default_shop(data_dir, seed)
    panel = truth_panel(truth)
    warehouses = warehouse_truth_panel(truth)
    future = AnnouncedFuture(truth)
    # a fresh registry each run: the gate judges against the baselines, not a past run
    runs_dir = data_dir / "bench-runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    settings = load_settings(data_dir=runs_dir, profile="local", pii_key="f" * 32)
    load = os.getloadavg()[0]

    began = time.monotonic()
    trained = train(
        panel, future, settings, {"source": "ground truth", "seed": seed}, warehouses=warehouses
    )
    train_seconds = time.monotonic() - began
    began = time.monotonic()
    scored = score(panel, future(panel[DS].max(), panel), settings)
    score_seconds = time.monotonic() - began

    evaluation = trained.evaluation
    rows = evaluation.backtest  # the chosen model's origin x target-week rows
    oracle = float((rows[Y] - oracle_forecasts(truth, rows)).abs().sum() / rows[Y].sum())
    return {
        "seed": seed,
        "series": int(panel["unique_id"].nunique()),
        "origins": [f"{o:%Y-%m-%d}" for o in evaluation.origins],
        "rows": len(rows),
        "wape": evaluation.wape,
        "oracle_wape": oracle,
        "champion": evaluation.chosen,
        "champion_wape": evaluation.wape[evaluation.chosen],
        "best_baseline_wape": evaluation.best_baseline,
        "coverage_80": evaluation.coverage,
        "warehouse": trained.warehouse.metrics() if trained.warehouse else None,
        "promoted": trained.decision.promote,
        "gate": trained.decision.reason,
        "train_seconds": train_seconds,
        "score_seconds": score_seconds,
        "forecast_rows": len(scored.forecast),
        "mean_forecast": float(scored.forecast["forecast_units"].mean()),
        "load_average_1m": load,
        "cores": os.cpu_count(),
    }


def report(result: dict[str, Any]) -> None:
    best, oracle = result["best_baseline_wape"], result["oracle_wape"]
    table = Table(title=f"demand forecast, seed {result['seed']}: WAPE on the last 8 origins")
    for column in ("model", "WAPE", "/ best baseline", "/ oracle"):
        table.add_column(column, justify="left" if column == "model" else "right")
    ordered = sorted(result["wape"].items(), key=lambda kv: kv[1])
    for name, value in [*ordered, ("oracle (expected demand)", oracle)]:
        label = name
        if name == result["champion"]:
            label = f"{name} (champion)"
        elif name in BASELINES:
            label = f"{name} (baseline)"
        table.add_row(label, f"{value:.4f}", f"{value / best:.3f}", f"{value / oracle:.3f}")
    console.print(table)
    ratio = result["champion_wape"] / best
    verdict = "meets" if ratio <= BAR and 0.75 <= result["coverage_80"] <= 0.85 else "misses"
    total = result["train_seconds"] + result["score_seconds"]
    split = result["warehouse"]
    if split:
        console.print(
            f"per warehouse (the champion's forecast split by share): WAPE "
            f"{split['warehouse.wape']:.4f}, best warehouse baseline "
            f"{split['warehouse.best_baseline_wape']:.4f} "
            f"({split['warehouse.wape'] / split['warehouse.best_baseline_wape']:.3f} x), "
            f"80% coverage {split['warehouse.coverage_80']:.3f}"
        )
    console.print(
        f"champion {result['champion']}: {ratio:.3f} x the best baseline (bar {BAR}), "
        f"{result['champion_wape'] / oracle:.3f} x the oracle; 80% coverage "
        f"{result['coverage_80']:.3f} (band 0.75-0.85): {verdict} the issue's bar\n"
        f"gate: {'promoted' if result['promoted'] else 'refused'} ({result['gate']})\n"
        f"train {result['train_seconds']:.1f} s + score {result['score_seconds']:.1f} s = "
        f"{total:.1f} s (limit 180 s) on {result['cores']} cores, 1-min load "
        f"{result['load_average_1m']:.2f} at the start; {result['series']} series, "
        f"{result['rows']} backtest rows"
    )


def as_record(result: dict[str, Any]) -> dict[str, Any]:
    """The run as a record: every model, baseline and the oracle a peer, scored on the
    same origin x target-week rows."""
    best, oracle = result["best_baseline_wape"], result["oracle_wape"]

    def role(name: str) -> str:
        if name == result["champion"]:
            return "champion"
        return "baseline" if name in BASELINES else "candidate"

    peers = {name: {"wape": wape, "role": role(name)} for name, wape in result["wape"].items()}
    peers["oracle"] = {"wape": oracle, "role": "oracle (the expected units sampled from)"}
    figures = {k: v for k, v in result.items() if k not in ("wape", "seed", "load_average_1m")}
    return {
        **figures,
        "parameters": {
            "seed": result["seed"],
            "shop": "the default shop (lakehouse generate, default parameters)",
            "origins": len(result["origins"]),
            "load_1min_at_start": result["load_average_1m"],
        },
        "peers": peers,
        "ratios": {
            "champion_vs_best_baseline_wape": result["champion_wape"] / best,
            "champion_vs_oracle_wape": result["champion_wape"] / oracle,
        },
    }


def seeded_main(
    name: str,
    description: str,
    run_bench: Callable[[Path, int], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
    to_record: Callable[[dict[str, Any]], dict[str, Any]],
    libraries: tuple[str, ...],
) -> None:
    """The command line of a benchmark on the default shop: ``--data-dir``, ``--seed``;
    the result as a table and as the record ``bench/results/<name>-seed<seed>.json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data_dir = args.data_dir or DATA / f"seed{args.seed}"
    result = run_bench(data_dir.resolve(), args.seed)
    show(result)
    out = record.write(name, to_record(result), libraries=libraries, name=f"{name}-seed{args.seed}")
    console.print(f"results: {out}")


def main() -> None:
    seeded_main(
        "forecast",
        __doc__.splitlines()[0],
        run,
        report,
        as_record,
        ("statsforecast", "lightgbm", "mlforecast", "pandas", "numpy", "mlflow"),
    )


if __name__ == "__main__":
    main()
