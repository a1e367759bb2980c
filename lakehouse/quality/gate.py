"""Write-audit-publish: build the marts where no reader looks, audit them, publish them only
when no error-level check failed.

1. **write**: ``dbt build`` (models and their dbt tests, enforced contracts) into the build
   area;
2. **audit**: the dbt tests and models, ``dbt source freshness``, reconciliation of silver
   with the source, and the Great Expectations checkpoints of bronze, silver and marts;
3. **record**: every check and the run go to the lake's quality tables; dbt builds
   ``mart_data_quality`` and ``mart_pipeline_health`` from them;
4. **publish**: the marts are served (``lakehouse.quality.publish``, through the
   warehouse port): all of them when the audit passed, else the quality marts only,
   beside the last good data marts;
5. **alert**: a failed check is logged, and reported to the webhook when one is set; a
   blocked run raises :class:`PublicationBlocked`, which names every failing check. The
   commit-to-mart freshness SLO (``lakehouse.quality.slo``) alerts when it crosses a
   threshold.

Each run samples the served marts' freshness (``lakehouse.lake.freshness``) and counts
itself in the process's Prometheus metrics (``lakehouse.metrics``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lakehouse import metrics
from lakehouse.cdc.lander import fold_silver
from lakehouse.contracts import load_source_contracts
from lakehouse.exceptions import LakehouseError, PipelineError
from lakehouse.lake import dead_letter, delta, freshness, ml_tables, quality_tables
from lakehouse.lease import hold
from lakehouse.lineage import runs as lineage
from lakehouse.oltp.cluster import Cluster
from lakehouse.progress import Progress as NodeProgress
from lakehouse.quality import CheckResult, Layer, Severity, history
from lakehouse.quality.alerts import send_alert
from lakehouse.quality.publish import QUALITY_MARTS, Publication, publish
from lakehouse.quality.reconcile import reconcile, source_kind
from lakehouse.quality.slo import follow_slo
from lakehouse.settings import Settings
from lakehouse.transform.dbt import DbtResult, NodeOutcome, run_dbt
from lakehouse.warehouse import expose_lake

log = logging.getLogger(__name__)

QUALITY_TAG = "quality"
Progress = Callable[[str], None]


@dataclass
class GateReport:
    run_id: str
    started_at: datetime
    checks: list[CheckResult] = field(default_factory=list)
    publication: Publication | None = None
    build_seconds: float = 0.0
    audit_seconds: float = 0.0
    publish_seconds: float = 0.0

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocks]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.warns]

    @property
    def published(self) -> bool:
        return not self.blocking

    @property
    def outcome(self) -> str:
        if self.blocking:
            return "blocked"
        return "published_with_warnings" if self.warnings else "published"

    def summary(self) -> str:
        counts = f"{len(self.checks)} checks, {len(self.blocking)} failed, " + (
            f"{len(self.warnings)} warnings"
        )
        if self.blocking:
            served = self.publication.data_run_id if self.publication else None
            kept = f"the marts of run {served} stay served" if served else "no marts served yet"
            return f"publication blocked ({counts}); {kept}"
        return f"published run {self.run_id} ({counts})"


class PublicationBlocked(PipelineError):
    """An error-level check failed: the marts were not published."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        names = ", ".join(c.check for c in report.blocking)
        super().__init__(f"{report.summary()}: failed {names}")


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def build_audit_publish(
    settings: Settings, progress: Progress | None = None, *, nodes: NodeProgress | None = None
) -> GateReport:
    """One write-audit-publish run; raises :class:`PublicationBlocked` when it blocked.
    One build at a time per lake: it holds the build lease, so two runs never write the
    build area or publish over each other (the second waits, see ``lakehouse.lease``).
    ``progress`` hears each stage; ``nodes`` shows the dbt build's nodes as they finish."""
    with hold(settings, "build"):
        report = write(settings, progress, nodes=nodes)
        audit(settings, report, progress, nodes=nodes)
        return publish_or_block(settings, report, progress, nodes=nodes)


def write(
    settings: Settings, progress: Progress | None = None, *, nodes: NodeProgress | None = None
) -> GateReport:
    """Build the models and run their dbt tests in the build area."""
    say = progress or _log_progress
    started = datetime.now(UTC)
    report = GateReport(new_run_id(started), started)
    lineage.build_started(settings, report.run_id)
    quality_tables.ensure_tables(settings)
    freshness.ensure_tables(settings)
    ml_tables.ensure_tables(settings)  # sources of the forecast marts, before any model ran
    say("folding the silver tails")
    fold_silver(settings, load_source_contracts(settings).values())  # dbt reads the bases
    expose_lake(settings)  # dbt's engine must know the lake's tables
    say("dbt build (write)")
    clock = time.perf_counter()
    build = run_dbt(
        settings,
        ["build", "--exclude", f"tag:{QUALITY_TAG}"],
        raise_on_failure=False,
        progress=nodes,
        lineage_run=report.run_id,
    )
    report.build_seconds = time.perf_counter() - clock
    if not build.outcomes and not build.succeeded:
        raise PipelineError("dbt build failed before running any node (see the dbt log above)")
    report.checks += dbt_checks(build)
    return report


def audit(
    settings: Settings,
    report: GateReport,
    progress: Progress | None = None,
    *,
    nodes: NodeProgress | None = None,
) -> None:
    """The checks beyond dbt's tests: freshness, reconciliation, Great Expectations."""
    # Great Expectations and pandas take seconds to load: only a run that audits pays
    from lakehouse.quality.expectations import run_expectations

    say = progress or _log_progress
    clock = time.perf_counter()
    say("dbt source freshness (audit)")
    freshness = run_dbt(settings, ["source", "freshness"], raise_on_failure=False, progress=nodes)
    report.checks += freshness_checks(settings, freshness)
    say("reconciliation with the source (audit)")
    with source_up(settings):
        report.checks += reconcile(settings)
    say("Great Expectations checkpoints (audit)")
    report.checks += run_expectations(settings, run_id=report.run_id)
    report.audit_seconds = time.perf_counter() - clock


@contextmanager
def source_up(settings: Settings) -> Iterator[None]:
    """The database a live capture read, up for the block: reconciliation reads it and
    starts nothing. A stopped managed cluster is started and stopped after; one that does
    not start is left to reconciliation, whose checks say it is not reachable."""
    with ExitStack() as stack:
        if source_kind(settings) == "live":
            try:
                stack.enter_context(Cluster(settings).running(create=False))
            except LakehouseError as exc:
                log.warning("the source database did not start: %s", exc)
        yield


def publish_or_block(
    settings: Settings,
    report: GateReport,
    progress: Progress | None = None,
    *,
    nodes: NodeProgress | None = None,
) -> GateReport:
    """Record the checks, build the quality marts, publish, alert; raise
    :class:`PublicationBlocked` when an error-level check failed."""
    say = progress or _log_progress
    say("recording the checks; building the quality marts")
    clock = time.perf_counter()
    served_before = history.last_served_run(settings)
    finished = datetime.now(UTC)
    newest = newest_source_commit(settings)
    published = report.published
    history.record(
        settings,
        history.RunRecord(
            run_id=report.run_id,
            profile=settings.profile,
            started_at=report.started_at,
            finished_at=finished,
            outcome=report.outcome,
            checks=len(report.checks),
            errors=len(report.blocking),
            warnings=len(report.warnings),
            served_run_id=report.run_id if published else served_before,
            newest_source_commit=newest,
            published_at=finished if published else None,
            freshness_seconds=(finished - newest).total_seconds() if published and newest else None,
            dead_letters=dead_letters(settings),
            build_seconds=report.build_seconds,
            audit_seconds=report.audit_seconds,
        ),
        report.checks,
        checked_at=finished,
    )
    if source_kind(settings) != "files":  # a recording is as old as it was recorded
        freshness.sample(settings, "gate", now=finished)  # the marts served after this run
    expose_lake(settings)  # the quality tables just written too
    # one thread: dbt-duckdb's delta plugin would create the source schema twice at once
    run_dbt(
        settings,
        ["run", "--select", f"tag:{QUALITY_TAG}", "--threads", "1"],
        progress=nodes,
        lineage_run=report.run_id,
    )
    say("publishing" if published else "publication blocked: publishing the quality marts only")
    report.publication = publish(
        settings, report.run_id, data=published, served_run_id=served_before
    )
    report.publish_seconds = time.perf_counter() - clock
    lineage.published(
        settings,
        report.run_id,
        outcome=report.outcome,
        data_run_id=report.publication.data_run_id,
        rows=report.publication.rows,
        refreshed=None if published else QUALITY_MARTS,
    )
    metrics.gate_run(
        report.outcome,
        report.checks,
        {
            "build": report.build_seconds,
            "audit": report.audit_seconds,
            "publish": report.publish_seconds,
        },
    )
    follow_slo(settings, report.run_id)

    failed = [c for c in report.checks if not c.passed]
    for check in failed:
        level = logging.ERROR if check.blocks else logging.WARNING
        log.log(level, "%s check failed: %s: %s", check.severity, check.check, check.detail)
    if failed:
        send_alert(settings, _alert_payload(settings, report))
    if report.blocking:
        raise PublicationBlocked(report)
    return report


def _log_progress(message: str) -> None:
    log.info("%s", message)


def _layer(model: str | None) -> Layer:
    if model and model.startswith("stg_"):
        return "staging"
    if model and model.startswith("int_"):
        return "intermediate"
    return "marts"


def dbt_checks(result: DbtResult) -> list[CheckResult]:
    """Each dbt test that ran, and each model (built, or failed: an enforced contract, a
    constraint, an SQL error). Nodes dbt skipped after an upstream failure are left out:
    the failure upstream already names the cause."""
    checks: list[CheckResult] = []
    for node in result.outcomes:
        if node.status == "skipped":
            continue
        if node.resource_type == "test":
            checks.append(_test_check(node))
        elif node.resource_type == "model":
            checks.append(
                CheckResult(
                    check=f"dbt:model:{node.name}",
                    kind="dbt_model",
                    layer=_layer(node.name),
                    table=node.name,
                    severity="error",
                    passed=node.status == "success",
                    observed=node.status,
                    detail=node.message if node.status != "success" else "built",
                )
            )
    return checks


def _test_check(node: NodeOutcome) -> CheckResult:
    # dbt reports a failing warn-level test as "warn", an error-level one as "fail"
    severity: Severity = "warn" if node.status == "warn" or node.severity == "warn" else "error"
    passed = node.status == "pass"
    return CheckResult(
        check=f"dbt:{node.name}",
        kind="dbt_test",
        layer=_layer(node.relation),
        table=node.relation or "",
        severity=severity,
        passed=passed,
        observed=None if node.failures is None else str(node.failures),
        expected="0",
        detail="passed"
        if passed
        else (f"{node.failures} failing rows" if node.failures else node.message),
    )


def freshness_checks(settings: Settings, result: DbtResult) -> list[CheckResult]:
    """``dbt source freshness``: pass, warn (older than the warn SLA) or error (older than
    the error SLA, or the table could not be read)."""
    warn_after = settings.freshness_warn_after_minutes
    error_after = settings.freshness_error_after_minutes
    expected = ", ".join(
        part
        for part in (
            f"warn after {warn_after} min" if warn_after else "",
            f"error after {error_after} min" if error_after else "",
        )
        if part
    )
    checks = []
    for node in result.outcomes:
        if node.resource_type != "source":
            continue
        failed_as_error = node.status in ("error", "runtime error")
        severity: Severity = (
            "error" if failed_as_error or (node.status == "pass" and error_after) else "warn"
        )
        age = node.age_seconds
        checks.append(
            CheckResult(
                check=f"freshness:{node.relation}",
                kind="freshness",
                layer="silver",
                table=node.relation or node.name,
                severity=severity,
                passed=node.status == "pass",
                observed=None if age is None else f"{age:.0f} s",
                expected=expected or None,
                detail=f"newest source commit {_age(age)} ago" if age is not None else node.message,
            )
        )
    return checks


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def newest_source_commit(settings: Settings) -> datetime | None:
    """The newest source commit that reached silver, from the Delta file statistics."""
    newest: datetime | None = None
    for name in load_source_contracts(settings):
        table = delta.open_table(settings.table_uri("silver", name), settings.lake_storage_options)
        value = delta.stats_max(delta.file_stats(table), "max._source_ts")
        if isinstance(value, datetime) and (newest is None or value > newest):
            newest = value
    return newest


def dead_letters(settings: Settings) -> int:
    counts = dead_letter.count(
        settings.table_uri("dead_letter", "events"), settings.lake_storage_options
    )
    return sum(counts.column("count").to_pylist()) if counts.num_rows else 0


def _alert_payload(settings: Settings, report: GateReport) -> dict[str, object]:
    return {
        "source": "lakehouse",
        "event": "publication_blocked" if report.blocking else "checks_warned",
        "run_id": report.run_id,
        "profile": settings.profile,
        "summary": report.summary(),
        "failed": [c.to_dict() for c in report.checks if not c.passed],
    }
