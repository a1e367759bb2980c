"""Flow: a heartbeat that proves a worker runs the project's flows with its settings.

Quick on any data directory, empty or not: scheduled every ten minutes, a missing or
failed run says the worker (or the server's scheduler) is down or misconfigured.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._runtime import settings_for


@flow(name="health-check", log_prints=True)
def health_check_flow(data_dir: str | None = None) -> dict[str, str]:
    """The settings a flow run sees: its data directory (created), profile and lake."""
    settings = settings_for(data_dir)
    settings.root.mkdir(parents=True, exist_ok=True)
    seen = {"data_dir": str(settings.root), "profile": settings.profile, "lake": settings.lake_root}
    get_run_logger().info("flow runs work: %s", seen)
    return seen
