"""A small shop served as the API serves the demo's: recorded changes landed, dbt built
and published by the gate, Feast applied and materialized, both models trained and scored
with a ``champion``, their marts published, the search index refreshed. The demo's steps,
called directly (no Prefect): about three minutes on two cores, one per test session.

On a shop this small the promotion gate may refuse the first forecast model (its lead
over the baselines is within noise); the shop then promotes the version it trained, so
that there is a champion to serve: the API's tests are about serving, not the gate's
verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lakehouse.settings import Settings
from tests.quality.gate_support import lake_settings

CLIENTS, PRODUCTS, DAYS, SEED = 300, 40, 7 * (52 + 18), 11


def served_shop(data_dir: Path) -> Settings:
    from lakehouse.cdc.lander import ingest
    from lakehouse.features import apply, materialize
    from lakehouse.generate import GenerateParams, generate
    from lakehouse.quality.gate import build_audit_publish
    from lakehouse.search.index import refresh_published
    from ml import tracking
    from ml.demand import jobs as demand
    from ml.demand.train import REGISTERED_MODEL as DEMAND
    from ml.propositions import jobs as propositions
    from ml.propositions.train import REGISTERED_MODEL as PROPOSITIONS

    settings = lake_settings(data_dir)
    generate(settings, GenerateParams(clients=CLIENTS, products=PRODUCTS, days=DAYS, seed=SEED))
    ingest(settings)
    build_audit_publish(settings)
    apply(settings)
    materialize(settings, start=datetime(2000, 1, 1, tzinfo=UTC), export_first=False)
    trained = demand.train_job(settings)
    if tracking.champion(settings, DEMAND) is None:
        tracking.promote(settings, DEMAND, trained.version)
    demand.score_job(settings)
    offered = propositions.train_job(settings)
    if tracking.champion(settings, PROPOSITIONS) is None:
        tracking.promote(settings, PROPOSITIONS, offered.version)
    propositions.score_job(settings)
    build_audit_publish(settings)
    refresh_published(settings)
    return settings
