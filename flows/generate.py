"""Flow: generate the demo business's change events (deterministic, idempotent)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._runtime import flow_progress, settings_for
from lakehouse.generate import GenerateParams, generate


@flow(name="generate", log_prints=True)
def generate_flow(
    data_dir: str | None = None,
    seed: int = 42,
    clients: int = 1000,
    products: int = 300,
    days: int = 730,
) -> int:
    """Write the demo business's history as Debezium change events; returns the count."""
    settings = settings_for(data_dir)
    params = GenerateParams(seed=seed, clients=clients, products=products, days=days)
    with flow_progress() as progress:
        summary = generate(settings, params, progress=progress)
    state = "already there" if summary.skipped else f"in {summary.seconds:.1f} s"
    get_run_logger().info("%s change events %s", f"{summary.total_events:,}", state)
    return summary.total_events
