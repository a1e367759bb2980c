"""Flow: run the demo shop live in PostgreSQL while Debezium captures it."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from flows._runtime import flow_progress, settings_for
from lakehouse.oltp.simulate import SimulateParams
from lakehouse.pipeline.live import business_until, run_live


@flow(name="simulate-and-capture", log_prints=True)
def live_flow(
    data_dir: str | None = None,
    seed: int = 42,
    clients: int = 1000,
    products: int = 300,
    days: int = 730,
) -> dict[str, object]:
    """The shop's first ``days`` business days, committed to PostgreSQL as transactions
    and captured by Debezium into the topic log. A shop already that old adds nothing."""
    settings = settings_for(data_dir)
    start = SimulateParams.__dataclass_fields__["start_date"].default
    assert isinstance(start, date)
    params = SimulateParams(
        tps=0,
        duration=None,
        until=business_until(start, days),
        horizon_days=days,  # the business grows over the demo's span, as `generate` does
        seed=seed,
        clients=clients,
        products=products,
    )
    logger = get_run_logger()
    with flow_progress() as progress:
        report = run_live(settings, params, progress=progress, notify=logger.info)
    s = report.simulated
    logger.info(
        "%s transactions (%s changes) committed in %.1f s; Debezium handed over %s records",
        f"{s.transactions:,}",
        f"{sum(s.changes.values()):,}",
        s.seconds,
        f"{report.captured.records:,}",
    )
    return report.to_dict()
