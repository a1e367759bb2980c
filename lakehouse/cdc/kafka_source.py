"""Debezium topics in Kafka, as Kafka Connect or Debezium Server write them.

Records use the JSON converter with schemas disabled: the key is the JSON of the row key
(or null), the value the Debezium envelope, or null for a tombstone. Each record becomes
one line ``{"key":<key>,"value":<value>}`` at its Kafka offset, the same line the file
source reads (see docs/change-events.md).

The lake, not Kafka, holds the position: ``read`` assigns the partition at the offset the
lander asks for (the one after its last Delta app transaction) and never follows the
consumer group. The group's offsets are committed only after the Delta commit that holds
them, so that ``kafka-consumer-groups --describe`` shows the lander's true lag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from lakehouse.cdc.file_source import RawBatch
from lakehouse.exceptions import SourceError

PARTITION = 0  # one partition per topic: Debezium's per-table order
_CONSUME_MAX = 10_000
_POLL_S = 0.5
_log = logging.getLogger(__name__)
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,  # a leader election, e.g. after a restart
    KafkaError.LEADER_NOT_AVAILABLE,
    # the client's metadata lacks a partition of a topic it listed: refreshing after a
    # broker restart
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._WAIT_COORD,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.REQUEST_TIMED_OUT,
}


class KafkaSource:
    """Reads the change topics ``<topic_prefix_filter>.*`` of one Kafka cluster."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topic_prefix_filter: str,
        *,
        timeout_s: float = 30.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.prefix = topic_prefix_filter + "."
        self.timeout_s = timeout_s
        self._partitions_checked: set[str] = set()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "client.id": "lakehouse-lander",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                # a fetch parked at the end of one topic delays the next topic's first
                # fetch by up to this long (one fetch in flight per broker)
                "fetch.wait.max.ms": 25,
                # skip aborted transactions; stop at the last stable offset
                "isolation.level": "read_committed",
                "logger": _log,
                **(config or {}),
            }
        )

    def topics(self) -> list[str]:
        metadata = self._metadata(None)
        return sorted(
            name
            for name in metadata.topics
            if name.startswith(self.prefix) and not name.startswith("__")
        )

    def end_offset(self, topic: str) -> int:
        return self._watermarks(topic)[1]

    def read(self, topic: str, start: int, batch_size: int) -> Iterator[RawBatch]:
        """Records from ``start`` to the high watermark at the time of the call. A batch
        ends at ``batch_size`` records or at a gap in the offsets (compaction, transaction
        markers), so that line ``i`` of a batch always sits at ``first_offset + i``."""
        low, high = self._watermarks(topic)
        if start < low:
            if start > 0:
                raise SourceError(
                    f"{topic}: offsets {start}..{low - 1} were deleted from Kafka before "
                    "they landed; raise the topic's retention and re-snapshot the table"
                )
            start = low
        if start >= high:
            return
        self._consumer.assign([TopicPartition(topic, PARTITION, start)])
        try:
            yield from self._batches(topic, start, high, batch_size)
        finally:
            self._consumer.unassign()

    def committed(self, topic: str, last_offset: int) -> None:
        """Commit the group's offset (the next record to read) synchronously, retrying
        while the broker is unreachable (a restart) for up to ``timeout_s``."""
        offsets = [TopicPartition(topic, PARTITION, last_offset + 1)]
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                result = self._consumer.commit(offsets=offsets, asynchronous=False)
                error = next((p.error for p in result or [] if p.error is not None), None)
            except KafkaException as exc:
                error = exc.args[0]
            if error is None:
                return
            if not retriable(error) or time.monotonic() > deadline:
                raise SourceError(
                    f"cannot commit offset {last_offset + 1} of {topic} for group "
                    f"{self.group_id!r} at {self.bootstrap_servers}: {error}"
                )
            time.sleep(_POLL_S)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> KafkaSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------

    def _batches(self, topic: str, start: int, high: int, batch_size: int) -> Iterator[RawBatch]:
        lines: list[bytes] = []
        first = expected = start
        deadline = time.monotonic() + self.timeout_s
        while True:
            progressed = False
            # take what is queued at once; block only while nothing is
            messages = self._consumer.consume(_CONSUME_MAX, 0) or self._consumer.consume(1, _POLL_S)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # the end, markers included
                        if lines:
                            yield RawBatch.from_lines(topic, first, lines)
                        return
                    if retriable(error):  # the broker is restarting: librdkafka reconnects
                        continue
                    raise SourceError(f"{topic}: Kafka read failed at offset {expected}: {error}")
                offset = message.offset()
                if offset is None or offset >= high:
                    break
                if lines and (offset != expected or len(lines) >= batch_size):
                    yield RawBatch.from_lines(topic, first, lines)
                    lines = []
                if not lines:
                    first = offset
                lines.append(_line(message))
                expected = offset + 1
                progressed = True
            else:
                if expected < high:
                    if progressed:
                        deadline = time.monotonic() + self.timeout_s
                    elif time.monotonic() > deadline:
                        raise SourceError(
                            f"{topic}: no record from Kafka at {self.bootstrap_servers} for "
                            f"{self.timeout_s:.0f} s while reading offset {expected} "
                            f"(end {high}); is the broker up?"
                        )
                    continue
            if lines:
                yield RawBatch.from_lines(topic, first, lines)
            return

    def _metadata(self, topic: str | None) -> Any:
        try:
            return self._consumer.list_topics(topic, timeout=self.timeout_s)
        except KafkaException as exc:
            raise SourceError(
                f"cannot list topics of Kafka at {self.bootstrap_servers}: {exc.args[0]}"
            ) from None

    def _watermarks(self, topic: str) -> tuple[int, int]:
        """The partition's first and next offsets; while the broker restarts (no leader
        yet, a transport error) asked again for up to ``timeout_s``."""
        self._check_partitions(topic)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, PARTITION), timeout=self.timeout_s, cached=False
                )
            except KafkaException as exc:
                if retriable(exc.args[0]) and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                    continue
                raise SourceError(
                    f"cannot read the offsets of {topic} from Kafka at "
                    f"{self.bootstrap_servers}: {exc.args[0]}"
                ) from None
            return int(low), int(high)

    def _check_partitions(self, topic: str) -> None:
        if topic in self._partitions_checked:
            return
        found = self._metadata(topic).topics.get(topic)
        if found is None or found.error is not None:
            reason = "not found" if found is None else found.error
            raise SourceError(
                f"{topic}: cannot read from Kafka at {self.bootstrap_servers}: {reason}"
            )
        if len(found.partitions) != 1:
            raise SourceError(
                f"{topic} has {len(found.partitions)} partitions; the lander reads change "
                "topics of exactly one partition (Debezium's per-table order)"
            )
        self._partitions_checked.add(topic)


def retriable(error: object) -> bool:
    """Whether a Kafka error passes once the broker is back (a restart, a new leader)."""
    if not isinstance(error, KafkaError):
        return False
    return bool(error.retriable()) or error.code() in _TRANSIENT


def _line(message: Message) -> bytes:
    """``{"key":<key>,"value":<value>}`` from the record's JSON bytes; a missing key or
    value is ``null``. JSON may only hold a raw newline as whitespace: it becomes a space
    so that the record stays on one line."""
    key = message.key() or b"null"
    value = message.value() or b"null"
    if isinstance(key, str):
        key = key.encode()
    if isinstance(value, str):
        value = value.encode()
    line = b'{"key":' + key + b',"value":' + value + b"}"
    return line.replace(b"\n", b" ") if b"\n" in line else line
