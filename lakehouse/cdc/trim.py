"""Trim the change events that have landed: segments of the change-event log, records of
the Kafka topics.

What has landed is what the bronze tables' app transactions say (``landed_through``), never
what a consumer group or a file's name claims: an event that has not landed is never
trimmed. Of the landed events, those older than ``changes_retention_hours`` go: the lake is
the record, and the log holds the source's raw personal data. Kafka's own retention
(``kafka_retention_hours``, the topic's ``retention.ms``) stays the backstop it was.

Each trim is a :class:`lakehouse.lake.maintenance.Record` of layer ``changes`` or
``kafka``: ``files`` are a log's segments (a topic's records), the version its first
offset kept.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.kafka_source import PARTITION
from lakehouse.cdc.lander import landed_through
from lakehouse.exceptions import SourceError
from lakehouse.lake.maintenance import Record
from lakehouse.settings import Settings

_TIMEOUT_S = 30.0


def trim_change_log(
    settings: Settings, run_id: str, *, root: Path | None = None, dry_run: bool = False
) -> list[Record]:
    """Delete the segments of the change-event log under ``root`` (default the settings')
    whose events have all landed and that were last written more than
    ``changes_retention_hours`` ago; one record per topic."""
    source = FileSource(root or settings.changes_path)
    if not source.root.is_dir():
        return []
    topics = source.topics()
    landed = landed_through(settings, topics)
    records = []
    for topic in topics:
        if topic not in landed:
            continue
        before = _segments(source, topic)
        began = time.perf_counter()
        started = datetime.now(UTC)
        deleted = source.forget(
            topic, landed[topic], settings.changes_retention_hours * 3600, dry_run=dry_run
        )
        after = before if dry_run else _segments(source, topic)
        action, reason = "none", f"nothing landed and older than {_hours(settings)} h"
        if deleted:
            action = "trim"
            reason = (
                f"{deleted:,} segments landed (through offset {landed[topic]:,}) and older "
                f"than {_hours(settings)} h"
            )
        records.append(
            _record(run_id, started, "changes", topic, action, reason, before, after, began)
        )
    return records


def trim_kafka(settings: Settings, run_id: str, *, dry_run: bool = False) -> list[Record]:
    """Delete the records of the change topics that have landed and are older than
    ``changes_retention_hours`` (``AdminClient.delete_records``); one record per topic."""
    servers = settings.kafka_bootstrap_servers
    if not servers:
        return []
    common = {"bootstrap.servers": servers}
    consumer = Consumer(
        {**common, "group.id": f"{settings.kafka_group_id}-maintain", "enable.auto.commit": False}
    )
    admin = AdminClient({**common, "client.id": "lakehouse-maintain"})
    prefix = settings.topic_prefix + "."
    try:
        topics = sorted(
            name
            for name in consumer.list_topics(timeout=_TIMEOUT_S).topics
            if name.startswith(prefix)
        )
        landed = landed_through(settings, topics)
        cutoff_ms = int((time.time() - settings.changes_retention_hours * 3600) * 1000)
        records = []
        for topic in topics:
            if topic not in landed:
                continue
            began = time.perf_counter()
            started = datetime.now(UTC)
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, PARTITION), timeout=_TIMEOUT_S, cached=False
            )
            # the first record at or after the cutoff; none (-1): every record is older
            (at,) = consumer.offsets_for_times(
                [TopicPartition(topic, PARTITION, cutoff_ms)], timeout=_TIMEOUT_S
            )
            old_end = high if at.offset < 0 else at.offset
            upto = min(landed[topic] + 1, old_end)
            before = (high - low, 0, low)  # records, bytes (Kafka's own), first offset
            action, reason = "none", f"nothing landed and older than {_hours(settings)} h"
            after = before
            if upto > low:
                action = "trim"
                reason = f"offsets {low:,}..{upto - 1:,} landed and older than {_hours(settings)} h"
                if not dry_run:
                    future = admin.delete_records([TopicPartition(topic, PARTITION, upto)])
                    low = int(next(iter(future.values())).result(_TIMEOUT_S).low_watermark)
                    after = (high - low, 0, low)
            records.append(
                _record(run_id, started, "kafka", topic, action, reason, before, after, began)
            )
        return records
    except KafkaException as exc:
        raise SourceError(
            f"cannot trim the change topics of Kafka at {servers}: {exc.args[0]}"
        ) from None
    finally:
        consumer.close()


def _hours(settings: Settings) -> str:
    return f"{settings.changes_retention_hours:g}"


def _segments(source: FileSource, topic: str) -> tuple[int, int, int]:
    """The topic's segments: how many, their bytes, and the first offset they hold."""
    segments = source.segments(topic)
    size = sum(path.stat().st_size for _, path in segments)
    return len(segments), size, segments[0][0] if segments else 0


def _record(
    run_id: str,
    started: datetime,
    layer: str,
    topic: str,
    action: str,
    reason: str,
    before: tuple[int, int, int],
    after: tuple[int, int, int],
    began: float,
) -> Record:
    return Record(
        run_id=run_id,
        started_at=started,
        layer=layer,
        table_name=topic,
        action=action,
        reason=reason,
        files_before=before[0],
        files_after=after[0],
        live_bytes_before=before[1],
        live_bytes_after=after[1],
        disk_bytes_before=before[1],
        disk_bytes_after=after[1],
        version_before=before[2],
        version_after=after[2],
        seconds=time.perf_counter() - began,
    )
