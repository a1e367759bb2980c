"""The propositions at the default scale against their yardsticks, in one run: the model
(implicit ALS + content + rules) and every baseline (global popularity, segment and
region popularity, the client's repeat purchases plus popularity, the same weighted to
recent ones) trained before the same cutoff (8 complete weeks before the data ends) and
scored on the purchases of the 8 weeks after it, with the generator's purchase
propensities for those weeks (the oracle) as the ceiling. Then a full training run
(backtest, fit on everything, MLflow run, registry, gate) is timed.

The inputs come from the generated shop's ground truth (``tests/support/purchases.py``);
the pipeline's path reads them from the published marts and Feast instead.

The issue's bar: MAP@10 at least 1.5 x global popularity's and 1.2 x the repeat
purchases plus popularity's.

Usage: ``python -m bench.propositions [--data-dir DIR] [--seed 42]``: the same default
shop as ``bench/forecast.py`` (generated once, about a minute). Results:
``bench/results/propositions-seed<seed>.json`` and a table.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.forecast import default_shop, seeded_main
from lakehouse.search.catalog import document
from lakehouse.search.embed import embedder
from lakehouse.settings import load_settings
from ml.propositions.recommenders import ALSParams
from ml.propositions.train import MODEL, ORACLE, backtest, train
from tests.support.purchases import clients_at, truth_purchases

BARS = {"global_popularity": 1.5, "repeat_purchases": 1.2}
console = Console()


def _embeddings(truth: Path):  # type: ignore[no-untyped-def]
    products = pd.read_parquet(truth / "product.parquet")
    rows = [
        {
            "product_name": r.name,
            "category": r.category,
            "product_description": r.description,
        }
        for r in products.itertuples(index=False)
    ]
    vectors = embedder().encode([document(r) for r in rows])
    row_of = {int(p): i for i, p in enumerate(products["product_id"])}

    def lookup(ids: list[int]) -> np.ndarray:
        return np.stack([vectors[row_of[p]] for p in ids])

    return lookup


def run(data_dir: Path, seed: int) -> dict[str, Any]:
    truth = default_shop(data_dir, seed)
    runs_dir = data_dir / "bench-propositions-runs"  # a fresh registry each run
    shutil.rmtree(runs_dir, ignore_errors=True)
    settings = load_settings(data_dir=runs_dir, profile="local", pii_key="f" * 32)
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / "ground_truth").symlink_to(truth, target_is_directory=True)
    load = os.getloadavg()[0]
    purchases = truth_purchases(truth)
    began = time.monotonic()
    embeddings = _embeddings(truth)
    embed_seconds = time.monotonic() - began
    began = time.monotonic()
    result = backtest(purchases, clients_at(truth), settings, ALSParams(), embeddings)
    backtest_seconds = time.monotonic() - began
    began = time.monotonic()
    trained = train(
        purchases,
        clients_at(truth),
        settings,
        {"source": "ground truth", "seed": seed},
        embeddings=embeddings,
    )
    train_seconds = time.monotonic() - began
    overall = result.metrics[result.metrics["segment"] == "all"].set_index("recommender")
    by_segment = result.metrics.pivot(index="segment", columns="recommender", values="map_at_10")
    return {
        "seed": seed,
        "cutoff": str(result.cutoff),
        "end": str(result.end),
        "clients_scored": int(overall.loc[MODEL, "clients"]),
        "metrics": overall.drop(columns=["segment", "is_baseline"]).to_dict(orient="index"),
        "baselines": sorted(
            result.metrics.loc[result.metrics["is_baseline"], "recommender"].unique()
        ),
        "map_by_segment": by_segment.to_dict(orient="index"),
        "promoted": trained.promoted,
        "gate": trained.reason,
        "embed_seconds": embed_seconds,
        "backtest_seconds": backtest_seconds,
        "train_seconds": train_seconds,
        "load_average_1m": load,
        "cores": os.cpu_count(),
    }


def report(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    model = metrics[MODEL]["map_at_10"]
    oracle = metrics.get(ORACLE, {}).get("map_at_10")
    table = Table(
        title=f"propositions, seed {result['seed']}: cutoff {result['cutoff']}, hits until "
        f"{result['end']} (excluded), {result['clients_scored']} clients"
    )
    for column in ("recommender", "MAP@10", "nDCG@10", "recall@10", "coverage", "model /"):
        table.add_column(column, justify="left" if column == "recommender" else "right")
    for name, row in sorted(metrics.items(), key=lambda kv: -kv[1]["map_at_10"]):
        label = f"{name} (baseline)" if name in result["baselines"] else name
        table.add_row(
            label,
            f"{row['map_at_10']:.4f}",
            f"{row['ndcg_at_10']:.4f}",
            f"{row['recall_at_10']:.4f}",
            f"{row['catalogue_coverage']:.1%}",
            f"{model / row['map_at_10']:.2f} x",
        )
    console.print(table)
    for baseline, bar in BARS.items():
        ratio = model / metrics[baseline]["map_at_10"]
        verdict = "meets" if ratio >= bar else "misses"
        console.print(f"MAP@10 {ratio:.2f} x {baseline} (bar {bar} x): {verdict} the issue's bar")
    if oracle is not None:
        console.print(f"the oracle's MAP@10 {oracle:.4f}: the model reaches {model / oracle:.0%}")
    console.print(
        f"gate: {'promoted' if result['promoted'] else 'refused'} ({result['gate']})\n"
        f"embedding the catalogue {result['embed_seconds']:.1f} s, backtest of the model and "
        f"baselines {result['backtest_seconds']:.1f} s, training run (backtest, fit, MLflow, "
        f"registry) {result['train_seconds']:.1f} s on {result['cores']} cores, 1-min load "
        f"{result['load_average_1m']:.2f} at the start"
    )


def as_record(result: dict[str, Any]) -> dict[str, Any]:
    """The run as a record: the model, every baseline and the oracle a peer, trained
    before the same cutoff and scored on the same clients' next 8 weeks."""
    metrics = result["metrics"]
    model = metrics[MODEL]["map_at_10"]
    peers = {
        name: {
            **row,
            "role": "baseline"
            if name in result["baselines"]
            else "oracle"
            if name == ORACLE
            else "model",
        }
        for name, row in metrics.items()
    }
    figures = {k: v for k, v in result.items() if k not in ("metrics", "seed", "load_average_1m")}
    ratios = {f"model_vs_{b}_map": model / metrics[b]["map_at_10"] for b in BARS}
    if ORACLE in metrics:
        ratios["model_vs_oracle_map"] = model / metrics[ORACLE]["map_at_10"]
    return {
        **figures,
        "parameters": {
            "seed": result["seed"],
            "shop": "the default shop of bench/forecast.py",
            "cutoff": result["cutoff"],
            "end": result["end"],
            "clients_scored": result["clients_scored"],
            "load_1min_at_start": result["load_average_1m"],
        },
        "peers": peers,
        "ratios": ratios,
    }


def main() -> None:
    seeded_main(
        "propositions",
        __doc__.splitlines()[0],
        run,
        report,
        as_record,
        ("implicit", "scipy", "pandas", "numpy", "mlflow"),
    )


if __name__ == "__main__":
    main()
