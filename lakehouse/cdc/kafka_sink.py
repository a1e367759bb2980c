"""Produce the captured change records to Kafka, as Debezium Server's Kafka sink does.

``capture`` writes here instead of the topic log on disk when ``kafka_bootstrap_servers``
is set, and the lander reads the topics back with ``KafkaSource``. Each line
``{"key":<key>,"value":<value>}`` the capture hands over becomes one record: key and
value are the line's JSON bytes as Debezium wrote them, a ``null`` value a tombstone. A
table's topic has one partition (the lander reads no other): it is created so when
missing, and capture refuses an existing topic with more.

The producer is idempotent with ``acks=all``: its retries, while a broker restarts say,
neither reorder nor double records. ``sync()`` waits until every record is acknowledged
and raises otherwise, so that the engine does not count the batch as processed; it sends
the batch again after a restart, and the lander removes what lands twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.cdc.kafka_source import PARTITION, retriable
from lakehouse.exceptions import SourceError

# how long a record may wait for its acknowledgement (the broker restarting, say) before
# it fails; the topic creation waits as long for the broker
DELIVERY_TIMEOUT_S = 120.0
_CLOSE_S = 10.0
_RETRY_S = 0.5
_KEY = '{"key":'
_VALUE = ',"value":'
_DECODER = json.JSONDecoder()
_log = logging.getLogger(__name__)


class KafkaSink:
    """Appends change records to the topics of one Kafka cluster; ``sync()`` waits until
    the broker has them (the interface of ``ChangeLogWriter``)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        timeout_s: float = DELIVERY_TIMEOUT_S,
        retention_hours: float | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        # the topics carry the source's raw personal data: Kafka keeps them this long
        self._topic_config = (
            {} if retention_hours is None else {"retention.ms": str(int(retention_hours * 3.6e6))}
        )
        common: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            # topics are created here, with one partition, never by the broker's defaults
            "allow.auto.create.topics": False,
            "logger": _log,
        }
        self._producer = Producer(
            {
                **common,
                "client.id": "lakehouse-capture",
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": int(timeout_s * 1000),
                "linger.ms": 5,
            }
        )
        self._admin = AdminClient({**common, "client.id": "lakehouse-capture-admin"})
        self._topics: set[str] = set()  # known to exist with one partition
        self._failures: list[str] = []

    def append(self, topic: str, lines: list[bytes]) -> None:
        if topic not in self._topics:
            self._create(topic)
        for line in lines:
            key, value = _record(line)
            while True:
                try:
                    self._producer.produce(
                        topic, value, key, PARTITION, on_delivery=self._delivered
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(_RETRY_S)

    def sync(self) -> None:
        """Wait until the broker acknowledged every record appended so far."""
        left = self._producer.flush(self.timeout_s + 30.0)
        failures, self._failures = self._failures, []
        if failures:
            raise SourceError(
                f"Kafka at {self.bootstrap_servers} did not take {len(failures):,} change "
                f"records ({failures[0]}); the batch is sent again when capture restarts"
            )
        if left:
            raise SourceError(
                f"{left:,} change records not acknowledged by Kafka at "
                f"{self.bootstrap_servers} within {self.timeout_s + 30.0:.0f} s; is the broker "
                "up? The batch is sent again when capture restarts"
            )

    def close(self) -> None:
        """Deliver what is still queued, briefly: records of a batch that was not synced
        are sent again by the engine anyway."""
        left = self._producer.flush(_CLOSE_S)
        if left:
            _log.warning("%d change records not delivered to Kafka when capture stopped", left)

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def _create(self, topic: str) -> None:
        """Create ``topic`` with one partition, or check that the existing one has one;
        retry while the broker is unreachable, for up to ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = max(1.0, deadline - time.monotonic())
            new = NewTopic(  # the broker's default replication factor
                topic, num_partitions=1, replication_factor=-1, config=self._topic_config
            )
            try:
                self._admin.create_topics([new], request_timeout=left)[topic].result()
                break
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    self._check_partitions(topic, left)
                    break
                if not retriable(error) or time.monotonic() > deadline:
                    raise SourceError(
                        f"cannot create topic {topic} in Kafka at {self.bootstrap_servers}: "
                        f"{error.str()}"
                    ) from None
            time.sleep(_RETRY_S)
        self._topics.add(topic)

    def _check_partitions(self, topic: str, timeout: float) -> None:
        try:
            found = self._admin.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise SourceError(
                f"cannot read topic {topic} from Kafka at {self.bootstrap_servers}: "
                f"{exc.args[0].str()}"
            ) from None
        partitions = 0 if found is None or found.error is not None else len(found.partitions)
        if partitions != 1:
            raise SourceError(
                f"{topic} has {partitions} partitions in Kafka at {self.bootstrap_servers}; "
                "the lander reads change topics of exactly one partition (Debezium's "
                "per-table order): recreate it with one"
            )


def _record(line: bytes) -> tuple[bytes | None, bytes | None]:
    """The key and value of a line ``{"key":<key>,"value":<value>}`` as the capture writes
    it, byte for byte; ``null`` is no key, or a tombstone's value."""
    text = line.decode().rstrip("\n")
    try:
        end = _DECODER.raw_decode(text, len(_KEY))[1] if text.startswith(_KEY) else -1
    except ValueError:
        end = -1
    if end < 0 or not text.startswith(_VALUE, end) or not text.endswith("}"):
        raise SourceError(f"not a change record: {text[:200]}")
    key, value = text[len(_KEY) : end], text[end + len(_VALUE) : -1]
    return (
        None if key == "null" else key.encode(),
        None if value == "null" else value.encode(),
    )
