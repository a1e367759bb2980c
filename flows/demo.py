"""Flow: the whole demo pipeline: the shop's changes -> ingest -> dbt build -> the demand
forecast (feature store, training, scoring) -> the propositions (training, scoring) ->
the forecast and propositions marts published -> the week's insight reports.

The changes come from the live path (the shop simulated in PostgreSQL, captured by
Debezium) when PostgreSQL is available, or from recorded Debezium files (``generate``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._runtime import flow_lineage, settings_for
from flows.forecast import forecast_flow, since_the_beginning
from flows.generate import generate_flow
from flows.ingest import ingest_flow
from flows.live import live_flow
from flows.propositions import propositions_flow
from flows.reports import reports_flow
from flows.transform import transform_flow
from lakehouse.pipeline.source import Source, choose_source

# the history the demand forecast needs: a year (last year's week) and 8 origins of 8 weeks
FORECAST_MIN_DAYS = 7 * (52 + 18)


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
    with flow_lineage(str(settings.root), "demo"):  # the parent run of every stage's events
        return _demo(str(settings.root), seed, clients, products, days, source)


def _demo(
    data_dir: str, seed: int, clients: int, products: int, days: int, source: Source
) -> dict[str, object]:
    settings = settings_for(data_dir)
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
    forecasting = days >= FORECAST_MIN_DAYS
    # the docs sites are built once, by the last publication
    nodes = transform_flow(data_dir=data_dir, docs=not forecasting)
    forecast: object = None
    propositions: object = None
    reports: object = None
    if forecasting:
        forecast = forecast_flow(
            data_dir=data_dir, train=True, materialize_from=since_the_beginning(), publish=False
        )
        # the same feature store, and one publication for both models' marts
        propositions = propositions_flow(data_dir=data_dir, feature_store=False, docs=True)
        # the last complete week's reports, from what was just published (seconds)
        reports = reports_flow(data_dir=data_dir)
    else:
        get_run_logger().warning(
            "demand forecast and propositions skipped: %s days of history are fewer than "
            "the %s the forecast needs (a year for last year's week, and 8 origins x 8 "
            "weeks of backtest)",
            days,
            FORECAST_MIN_DAYS,
        )
    return {
        "source": chosen,
        "changes": changes,
        "ingest": landed,
        "dbt": nodes,
        "forecast": forecast,
        "propositions": propositions,
        "reports": reports,
    }


if __name__ == "__main__":
    demo()
