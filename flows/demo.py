"""Flow: the whole demo pipeline: the shop's changes -> ingest -> dbt build.

The changes come from the live path (the shop simulated in PostgreSQL, captured by
Debezium) when PostgreSQL is available, or from recorded Debezium files (``generate``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._runtime import settings_for
from flows.generate import generate_flow
from flows.ingest import ingest_flow
from flows.live import live_flow
from flows.transform import transform_flow
from lakehouse.pipeline.source import Source, choose_source


@flow(name="demo", log_prints=True)
def demo(
    data_dir: str | None = None,
    seed: int = 42,
    clients: int = 1000,
    products: int = 300,
    days: int = 730,
    source: Source = "auto",
) -> dict[str, object]:
    settings = settings_for(data_dir)
    data_dir = str(settings.root)
    chosen = choose_source(settings, source, warn=get_run_logger().warning)
    get_run_logger().info("source of the changes: %s", chosen)
    changes: object
    if chosen == "live":
        changes = live_flow(
            data_dir=data_dir, seed=seed, clients=clients, products=products, days=days
        )
    else:
        changes = generate_flow(
            data_dir=data_dir, seed=seed, clients=clients, products=products, days=days
        )
    # the demo lands all it made at once: its change log (the source's raw personal
    # data) goes as soon as it has landed, whatever the retention setting
    landed = ingest_flow(data_dir=data_dir, changes_retention_hours=0)
    nodes = transform_flow(data_dir=data_dir)
    return {"source": chosen, "changes": changes, "ingest": landed, "dbt": nodes}


if __name__ == "__main__":
    demo()
