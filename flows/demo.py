"""Flow: the whole demo pipeline, generate -> ingest -> dbt build."""

from __future__ import annotations

from prefect import flow

from flows._runtime import settings_for
from flows.generate import generate_flow
from flows.ingest import ingest_flow
from flows.transform import transform_flow


@flow(name="demo", log_prints=True)
def demo(
    data_dir: str | None = None,
    seed: int = 42,
    clients: int = 1000,
    products: int = 300,
    days: int = 730,
) -> dict[str, object]:
    settings = settings_for(data_dir)
    data_dir = str(settings.root)
    events = generate_flow(
        data_dir=data_dir, seed=seed, clients=clients, products=products, days=days
    )
    landed = ingest_flow(data_dir=data_dir)
    nodes = transform_flow(data_dir=data_dir)
    return {"events": events, "ingest": landed, "dbt": nodes}


if __name__ == "__main__":
    demo()
