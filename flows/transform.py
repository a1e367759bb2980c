"""Flow: write-audit-publish. Build the marts, audit them (dbt tests and contracts, source
freshness, reconciliation with the source, Great Expectations checkpoints), publish them
only when no error-level check failed; then the product search index follows the newly
published catalogue (a blocked publication changed no data mart: nothing to follow), and
the docs sites are built."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows._runtime import flow_lineage, flow_progress, settings_for
from lakehouse.lease import hold
from lakehouse.quality.gate import GateReport, audit, publish_or_block, write
from lakehouse.search.index import refresh_published
from lakehouse.transform.docs import build_docs


@task(name="write")
def write_task(data_dir: str | None) -> GateReport:
    with flow_progress() as nodes:  # the models and tests built, not dbt's line per node
        return write(settings_for(data_dir), get_run_logger().info, nodes=nodes)


@task(name="audit")
def audit_task(data_dir: str | None, report: GateReport) -> GateReport:
    with flow_progress() as nodes:
        audit(settings_for(data_dir), report, get_run_logger().info, nodes=nodes)
    return report


@task(name="publish")
def publish_task(data_dir: str | None, report: GateReport) -> GateReport:
    with flow_progress() as nodes:
        return publish_or_block(settings_for(data_dir), report, get_run_logger().info, nodes=nodes)


# Retrying is safe (a refresh makes the index equal the catalogue, whatever it held) and
# useful on the local profile, where a `lakehouse search` may hold the index's folder
@task(name="search-index", retries=2, retry_delay_seconds=10)
def search_index_task(data_dir: str | None) -> dict[str, int | float]:
    with flow_progress() as progress:
        report = refresh_published(settings_for(data_dir), progress)
    get_run_logger().info("%s", report.summary())
    return report.to_dict()


@task(name="docs")
def docs_task(data_dir: str | None) -> dict[str, str]:
    with flow_progress() as nodes:
        sites = build_docs(settings_for(data_dir), nodes)
    return {name: str(path) for name, path in sites.items()}


@flow(name="transform", log_prints=True)
def transform_flow(data_dir: str | None = None, docs: bool = True) -> dict[str, object]:
    with (
        hold(settings_for(data_dir), "build"),  # one build per lake: the second waits
        flow_lineage(data_dir, "transform"),
    ):
        report = audit_task(data_dir, write_task(data_dir))
        try:
            report = publish_task(data_dir, report)  # raises when blocked
            search = search_index_task(data_dir)
        finally:
            if docs:  # the docs show the failed run too
                docs_task(data_dir)
    get_run_logger().info("%s", report.summary())
    return {
        "run_id": report.run_id,
        "outcome": report.outcome,
        "checks": len(report.checks),
        "warnings": [c.check for c in report.warnings],
        "search_index": search,
    }
