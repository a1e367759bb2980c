"""Flow: build and test the dbt project (``dbt build``) on the profile's engine."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows._runtime import settings_for
from lakehouse.transform.dbt import run_dbt


@task(name="dbt-build")
def dbt_build(data_dir: str | None) -> dict[str, int]:
    return run_dbt(settings_for(data_dir), ["build"]).nodes


@task(name="dbt-docs")
def dbt_docs(data_dir: str | None) -> None:
    run_dbt(settings_for(data_dir), ["docs", "generate"])


@flow(name="transform", log_prints=True)
def transform_flow(data_dir: str | None = None, docs: bool = True) -> dict[str, int]:
    nodes = dbt_build(data_dir)
    if docs:
        dbt_docs(data_dir)
    get_run_logger().info("dbt build: %s", nodes)
    return nodes
