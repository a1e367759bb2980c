"""A Kafka broker for tests, and records produced to it as Debezium's Kafka Connect
JSON converter (schemas disabled) writes them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.cdc.file_source import FileSource
from lakehouse.supervisors.kafka import KafkaBroker
from tests.support.ports import free_port

Record = tuple[bytes | None, bytes | None]  # (key JSON, value JSON or None for a tombstone)


@contextmanager
def running_broker(home: Path) -> Iterator[KafkaBroker]:
    """A broker on free ports, stopped (and its process gone) on exit."""
    broker = KafkaBroker(home, free_port(), free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def recorded(changes: Path) -> dict[str, list[Record]]:
    """Every recorded line of every topic as the (key, value) a connector would produce."""
    source = FileSource(changes)
    out: dict[str, list[Record]] = {}
    for topic in source.topics():
        records: list[Record] = []
        for batch in source.read(topic, 0, 1 << 30):
            for line in batch.lines:
                event = orjson.loads(line)
                key, value = event.get("key"), event.get("value")
                records.append(
                    (
                        None if key is None else orjson.dumps(key),
                        None if value is None else orjson.dumps(value),
                    )
                )
        out[topic] = records
    return out


def create_topics(bootstrap: str, topics: Iterable[str], partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for future in futures.values():
        try:
            future.result(30)
        except Exception as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise


def produce(
    bootstrap: str,
    records: dict[str, list[Record]],
    *,
    transaction_size: int | None = None,
    transactional_id: str = "test-producer",
) -> dict[str, list[int]]:
    """Produce each topic's records in order; return their offsets. With
    ``transaction_size`` they go out in transactions of that many records (each commit
    writes a marker: a gap in the offsets)."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
    }
    if transaction_size:
        config["transactional.id"] = transactional_id
    producer = Producer(config)
    offsets: dict[str, list[int]] = {topic: [] for topic in records}
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            offsets[message.topic()].append(message.offset())

    if transaction_size:
        producer.init_transactions(30)
    for topic, recs in records.items():
        chunk = transaction_size or len(recs) or 1
        for lo in range(0, len(recs), chunk):
            if transaction_size:
                producer.begin_transaction()
            for key, value in recs[lo : lo + chunk]:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                producer.poll(0)
            if transaction_size:
                producer.commit_transaction(30)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert not failures, failures[:3]
    assert {t: len(o) for t, o in offsets.items()} == {t: len(r) for t, r in records.items()}
    return offsets
