"""A small shop served as the API serves the demo's: the whole demo pipeline (recorded
changes, ingest, dbt, the gate, Feast, both models trained and scored, their marts
published, the search index refreshed) on a shop just big enough for the forecast
(a year and 18 weeks of history). About three minutes on two cores; one per session."""

from __future__ import annotations

from pathlib import Path

from lakehouse.settings import Settings
from tests.quality.gate_support import lake_settings

CLIENTS, PRODUCTS, DAYS, SEED = 300, 40, 7 * (52 + 18), 11


def served_shop(data_dir: Path) -> Settings:
    from flows.demo import demo

    settings = lake_settings(data_dir)
    demo(
        data_dir=str(data_dir),
        seed=SEED,
        clients=CLIENTS,
        products=PRODUCTS,
        days=DAYS,
        source="files",
    )
    return settings
