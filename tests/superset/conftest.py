"""A Superset of the test's own on a data directory whose marts are built and published."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake import freshness, maintenance, quality_tables
from lakehouse.quality.gate import build_audit_publish
from lakehouse.supervisors.superset import SupersetServer
from tests.quality.gate_support import lake_settings
from tests.support import propositions
from tests.support.forecasts import plant
from tests.support.ports import free_port

# a year and more of the shop: every chart has data (new, churned clients, cohorts)
BUSINESS = GenerateParams(clients=200, products=40, days=400, snapshot_day=10)


def published_lake(data_dir: Path, **overrides: Any) -> Any:
    settings = lake_settings(data_dir, superset_port=free_port(), **overrides)
    generate(settings, BUSINESS)
    return settings


def plant_model_outputs(settings: Any) -> None:
    """Forecasts and a backtest, propositions with their backtest and metrics, in the
    lake's ``ml`` tables, for the Demand forecast and Propositions dashboards: planted rows
    stand in for the model jobs (a run of the real jobs here would cost minutes and test
    the models, not the charts)."""
    plant(settings, "superset-run", "1", scale=10.0)
    propositions.plant(settings, "superset-run", "1")
    _plant_freshness_samples(settings)
    _maintain(settings)


def _maintain(settings: Any) -> None:
    """The real table maintenance, for the Data health dashboard's maintenance row, with
    thresholds low enough that a young lake has work (a compaction, checkpoints); the
    lake only (the change log and Kafka trims are not the charts')."""
    quality_tables.ensure_tables(settings)
    policy = replace(
        maintenance.Policy.from_settings(settings), min_small_files=2, checkpoint_versions=2
    )
    maintenance.record(settings, maintenance.maintain_lake(settings, policy, "superset-run"))


def _plant_freshness_samples(settings: Any) -> None:
    """Two days of the served marts' freshness, a few minutes of it stale, for the Data
    health dashboard's SLO row: a recorded source is never sampled (its commits are as old
    as the recording), so planted samples stand in for a live one's."""
    freshness.ensure_tables(settings)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    rows = []
    for minute in range(0, 2 * 24 * 60, 15):
        at = start + timedelta(minutes=minute)
        seconds = 5400.0 if minute % 600 == 0 else 120.0  # now and then older than the SLO
        rows.append(
            {
                "sampled_at": at,
                "sampled_by": "lander",
                "served_source_commit": at - timedelta(seconds=seconds),
                "freshness_seconds": seconds,
            }
        )
    write_deltalake(
        settings.table_uri("quality", freshness.SAMPLES),
        pa.Table.from_pylist(rows, schema=freshness.SAMPLES_SCHEMA),
        mode="append",
        storage_options=settings.lake_storage_options or None,
    )


@pytest.fixture(scope="module")
def local_superset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupersetServer]:
    settings = published_lake(tmp_path_factory.mktemp("superset") / "data")
    ingest(settings)
    plant_model_outputs(settings)
    build_audit_publish(settings)
    server = SupersetServer(settings)
    try:
        server.start()
        yield server
    finally:
        server.stop()
