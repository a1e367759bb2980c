"""The pipeline's Prometheus metrics, defined once: the capture, the lander, the gate and
the lake, named ``lakehouse_<stage>_<what>`` with the units Prometheus expects (seconds,
``_total`` on counters). Each process counts what it does in the default registry; a
long-running process serves it with :func:`serve` (``--metrics-port``), and what the lake
holds (freshness and files per table, the gate's last run, the freshness SLO) is read at
scrape time by :class:`LakeCollector`, so it is right whichever process wrote it.

The metric names, their labels and the SLO are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lakehouse.contracts import load_source_contracts
from lakehouse.exceptions import ConfigError
from lakehouse.lake import delta, freshness, silver
from lakehouse.lake.quality_tables import LAYER, RUNS
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

# a batch lands in milliseconds to tens of seconds
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

BUILD = Info("lakehouse_build", "The lakehouse release and the process serving these metrics")

# ---- capture (Debezium) ----------------------------------------------------------------
CAPTURE_EVENTS = Counter(
    "lakehouse_capture_events", "Change events captured, by source table (topic)", ["topic"]
)
CAPTURE_BATCHES = Counter("lakehouse_capture_batches", "Batches Debezium handed over")
CAPTURE_LAG = Gauge(
    "lakehouse_capture_lag_seconds",
    "Now minus the source commit time of the newest event captured (at its batch)",
    ["topic"],
)
CAPTURE_POSITION = Gauge(
    "lakehouse_capture_position",
    "The source position of the newest event captured (PostgreSQL: its LSN as a number)",
    ["topic"],
)

# ---- lander ----------------------------------------------------------------------------
LANDER_EVENTS = Counter("lakehouse_lander_events", "Change events read by the lander", ["table"])
LANDER_LANDED = Counter(
    "lakehouse_lander_landed", "Events appended to bronze (duplicates removed)", ["table"]
)
LANDER_DUPLICATES = Counter(
    "lakehouse_lander_duplicates", "Redelivered events the lander dropped", ["table"]
)
LANDER_DEAD_LETTERS = Counter(
    "lakehouse_lander_dead_letters", "Events sent to the dead-letter table", ["table"]
)
LANDER_BATCH_SECONDS = Histogram(
    "lakehouse_lander_batch_seconds",
    "Landing one batch: decode, dead letters and the bronze commit",
    ["table"],
    buckets=_SECONDS,
)
SILVER_APPLY_SECONDS = Histogram(
    "lakehouse_silver_apply_seconds",
    "Applying a table's new bronze changes to silver (one merge commit)",
    ["table"],
    buckets=_SECONDS,
)
LANDER_ROUND_SECONDS = Histogram(
    "lakehouse_lander_round_seconds", "One ingest round: every topic, then silver", buckets=_SECONDS
)
LANDER_OFFSET_LAG = Gauge(
    "lakehouse_lander_offset_lag",
    "Events of the topic not landed yet: its end offset minus the next offset to land",
    ["table"],
)

# ---- gate ------------------------------------------------------------------------------
GATE_RUNS = Counter("lakehouse_gate_runs", "Write-audit-publish runs, by outcome", ["outcome"])
GATE_CHECKS = Counter(
    "lakehouse_gate_checks", "Checks the gate ran, by kind and severity", ["kind", "severity"]
)
GATE_CHECKS_FAILED = Counter(
    "lakehouse_gate_checks_failed", "Checks that failed, by kind and severity", ["kind", "severity"]
)
GATE_SECONDS = Histogram(
    "lakehouse_gate_seconds",
    "A gate stage's duration: build, audit, publish",
    ["stage"],
    buckets=(1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
)


def gate_run(outcome: str, checks: list[Any], seconds: dict[str, float]) -> None:
    """Count one gate run: its outcome, its checks (``CheckResult``) and stage durations."""
    GATE_RUNS.labels(outcome).inc()
    for check in checks:
        GATE_CHECKS.labels(check.kind, check.severity).inc()
        if not check.passed:
            GATE_CHECKS_FAILED.labels(check.kind, check.severity).inc()
    for stage, value in seconds.items():
        GATE_SECONDS.labels(stage).observe(value)


class LakeCollector(Collector):
    """What the lake holds, read at each scrape from the Delta logs (no data files): per
    source table the freshness of bronze and silver (now minus their newest source commit)
    and their data files and version; the gate's last run (its checks, when it published
    and what the served marts' freshness is); the freshness SLO's last state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape never fails the process, it says why in the log
            log.warning("lake metrics not read: %s", exc)

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        s, now = self.settings, datetime.now(UTC)
        commit_lag = GaugeMetricFamily(
            "lakehouse_commit_lag_seconds",
            "Now minus the newest source commit a layer holds: bronze (landed) and silver "
            "(applied); silver's is the table's freshness",
            labels=["layer", "table"],
        )
        files = GaugeMetricFamily(
            "lakehouse_table_files",
            "Data files in the table's current version",
            labels=["layer", "table"],
        )
        versions = GaugeMetricFamily(
            "lakehouse_table_version",
            "The table's current Delta version",
            labels=["layer", "table"],
        )
        for name in load_source_contracts(s, allow_empty=True):
            newest_in: dict[str, datetime] = {}
            # silver's newest change may wait in its tail (docs/silver-layout.md)
            for layer in ("bronze", "silver", "silver_tail"):
                uri = s.table_uri(layer, name)
                if layer == "silver_tail":
                    uri = silver.tail_uri(s.table_uri("silver", name))
                table = delta.open_table(uri, s.lake_storage_options)
                if table is None:
                    continue
                stats = delta.file_stats(table)
                files.add_metric([layer, name], 0 if stats is None else stats.num_rows)
                versions.add_metric([layer, name], table.version())
                newest = delta.stats_max(stats, "max._source_ts")
                if isinstance(newest, datetime):
                    key = "silver" if layer == "silver_tail" else layer
                    newest_in[key] = max(newest, newest_in.get(key, newest))
            for layer, newest in newest_in.items():
                commit_lag.add_metric([layer, name], (now - newest).total_seconds())
        yield from (commit_lag, files, versions)
        yield from self._gate(now)
        yield from self._slo()

    def _gate(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        s = self.settings
        table = delta.open_table(s.table_uri(LAYER, RUNS), s.lake_storage_options)
        if table is None:
            return
        runs = table.to_pyarrow_table().sort_by([("finished_at", "descending")])
        if runs.num_rows == 0:
            return
        last = runs.slice(0, 1).to_pylist()[0]
        for name, text, value in (
            ("lakehouse_gate_last_run_checks", "Checks of the gate's last run", last["checks"]),
            (
                "lakehouse_gate_last_run_checks_failed",
                "Error-level checks that failed in the gate's last run",
                last["errors"],
            ),
            (
                "lakehouse_gate_last_run_timestamp_seconds",
                "When the gate's last run finished (Unix time)",
                last["finished_at"].timestamp(),
            ),
        ):
            yield GaugeMetricFamily(name, text, value=float(value))
        published = [p for p in runs.column("published_at").to_pylist() if p is not None]
        if published:
            yield GaugeMetricFamily(
                "lakehouse_publication_age_seconds",
                "Seconds since the gate last published the data marts",
                value=(now - max(published)).total_seconds(),
            )
        served = freshness.served_source_commit(s)
        if served is not None:
            yield GaugeMetricFamily(
                "lakehouse_mart_freshness_seconds",
                "Now minus the newest source commit the served marts hold (the SLO's measure)",
                value=(now - served).total_seconds(),
            )

    def _slo(self) -> Iterator[GaugeMetricFamily]:
        state = freshness.last_slo_state(self.settings)
        if state is None:
            return
        yield GaugeMetricFamily(
            "lakehouse_slo_freshness_budget_remaining",
            "The freshness SLO's error budget left over its window (1: untouched, <= 0: spent), "
            "as the gate's last run computed it",
            value=float(state["budget_remaining"]),
        )
        yield GaugeMetricFamily(
            "lakehouse_slo_freshness_burn_rate",
            "How fast the latest day spends the freshness SLO's error budget (1: exactly "
            "its allowance)",
            value=float(state["burn_rate"]),
        )


class MetricsServer:
    """prometheus_client's exposition of the default registry on ``port``, in a thread of
    this process, with the lake's metrics when ``lake`` is set. ``stop()`` (or the ``with``
    block's end) closes it."""

    def __init__(
        self, port: int, *, host: str = "127.0.0.1", process: str, lake: Settings | None = None
    ) -> None:
        BUILD.info({"version": version("lakehouse"), "process": process})
        self._collector = LakeCollector(lake) if lake is not None else None
        if self._collector is not None:
            REGISTRY.register(self._collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host)
        except OSError as exc:
            self._unregister()
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose another "
                "--metrics-port (0: none)"
            ) from None
        self.port = int(self._server.server_port)
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}/metrics"

    def _unregister(self) -> None:
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
        self._unregister()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    port: int | None, *, process: str, lake: Settings | None = None, host: str = "127.0.0.1"
) -> MetricsServer | None:
    """A :class:`MetricsServer` on ``port``, or None when ``port`` is 0 or None (off)."""
    if not port:
        return None
    return MetricsServer(port, host=host, process=process, lake=lake)
