"""The lander reads Debezium topics from a real Kafka broker (KRaft, started here).

The demo business's recorded change events are produced to Kafka as Kafka Connect's
JSON converter writes them; after landing, silver equals the generator's ground truth,
bronze holds every change once, and the consumer group's offsets show no lag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from deltalake import DeltaTable

from lakehouse.cdc.kafka_source import KafkaSource
from lakehouse.cdc.lander import ingest
from lakehouse.cdc.trim import trim_kafka
from lakehouse.contracts import load_contracts
from lakehouse.exceptions import SourceError
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.bronze import identity
from lakehouse.settings import Settings, load_settings
from lakehouse.supervisors.kafka import KafkaBroker
from tests.support.debezium import Source, item_row, write_item_contract, write_topic
from tests.support.kafka import create_topics, produce, recorded, running_broker
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
PARAMS = GenerateParams(clients=60, products=20, days=60, snapshot_day=5)
REDELIVERED = 60  # per topic: the tail a restarted connector sends again


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def _settings(tmp_path: Path, broker: KafkaBroker, prefix: str, **kw: object) -> Settings:
    settings = load_settings(
        data_dir=tmp_path,
        topic_prefix=prefix,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_group_id=f"lander-{prefix}",
        pii_key="kafka-test-key-0123456789abcdef0123",
        **kw,
    )
    generate(settings, PARAMS)
    return settings


class _RestartAfterCommits:
    """A Kafka source that restarts the broker after its n-th offset commit."""

    def __init__(self, source: KafkaSource, broker: KafkaBroker, commits: int) -> None:
        self.source, self.broker, self.left = source, broker, commits
        self.restarted = False
        self.topics, self.end_offset, self.read = source.topics, source.end_offset, source.read
        self.close = source.close

    def committed(self, topic: str, last_offset: int) -> None:
        self.source.committed(topic, last_offset)
        self.left -= 1
        if self.left == 0:
            self.broker.restart()
            self.restarted = True


def _committed(settings: Settings, topics: list[str]) -> dict[str, int]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": settings.kafka_group_id}
    )
    try:
        found = consumer.committed([TopicPartition(t, 0) for t in topics], timeout=30)
        return {tp.topic: tp.offset for tp in found}
    finally:
        consumer.close()


def _assert_bronze_once(settings: Settings) -> None:
    for table, contract in load_contracts(settings.contracts_dir).items():
        rows = DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_table()
        distinct = rows.group_by(identity(contract)).aggregate([]).num_rows
        assert distinct == rows.num_rows, f"bronze {table} holds duplicates"


def test_lands_kafka_topics_equal_to_truth(broker: KafkaBroker, tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker, "k1")
    records = recorded(settings.changes_path)
    create_topics(broker.bootstrap_servers, records)
    last = {topic: o[-1] for topic, o in produce(broker.bootstrap_servers, records).items()}

    report = ingest(settings)

    assert report.unknown_topics == []
    assert report.events == sum(len(r) for r in records.values())
    assert_silver_equals_truth(settings)
    _assert_bronze_once(settings)
    source = KafkaSource(broker.bootstrap_servers, "probe", "k1")
    ends = {topic: source.end_offset(topic) for topic in records}
    source.close()
    assert ends == {topic: offset + 1 for topic, offset in last.items()}
    assert _committed(settings, list(records)) == ends
    assert ingest(settings).events == 0  # nothing new: a second run lands nothing


def test_broker_restart_redelivery_and_transaction_gaps(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, broker, "k2", ingest_batch_events=200)
    records = recorded(settings.changes_path)
    create_topics(broker.bootstrap_servers, records)
    produce(broker.bootstrap_servers, {t: recs[: len(recs) // 2] for t, recs in records.items()})
    first = ingest(settings)
    assert first.events == sum(len(r) // 2 for r in records.values())

    broker.restart()

    # the rest in transactions (each commit marker leaves an offset gap), then the tail
    # again, as a connector restarted before its offset flush sends it
    rest = {t: recs[len(recs) // 2 :] for t, recs in records.items()}
    tail = {t: recs[-REDELIVERED:] for t, recs in records.items()}
    rest_at = produce(broker.bootstrap_servers, rest, transaction_size=97)
    tail_at = produce(broker.bootstrap_servers, tail, transaction_size=41)
    produced = {
        t: dict(zip(rest_at[t] + tail_at[t], rest[t] + tail[t], strict=True)) for t in records
    }
    last = {t: max(p) for t, p in produced.items()}

    # every batch holds contiguous offsets, line i at first_offset + i, as produced
    with KafkaSource(broker.bootstrap_servers, "probe", "k2") as source:
        topic = "k2.public.orders"
        start = min(produced[topic])
        seen = 0
        for batch in source.read(topic, start, 500):
            assert batch.count <= 500
            for i, line in enumerate(batch.lines):
                key, value = produced[topic][batch.first_offset + i]
                event = orjson.loads(line)
                assert event["key"] == orjson.loads(key or b"null")
                assert event["value"] == (None if value is None else orjson.loads(value))
                seen += 1
        assert seen == len(produced[topic])
        assert source.end_offset(topic) > last[topic] + 1  # markers: the offsets had gaps

    # and once more in the middle of landing, right after a Delta commit and its offset
    source = _RestartAfterCommits(
        KafkaSource(broker.bootstrap_servers, settings.kafka_group_id, "k2"), broker, commits=3
    )
    second = ingest(settings, source=source)
    source.close()
    assert source.restarted

    assert second.events == sum(len(p) for p in produced.values())
    assert sum(t.duplicates for t in second.topics) > 0
    assert_silver_equals_truth(settings)
    _assert_bronze_once(settings)
    assert _committed(settings, list(records)) == {t: o + 1 for t, o in last.items()}


def test_topic_with_two_partitions_is_refused(broker: KafkaBroker) -> None:
    create_topics(broker.bootstrap_servers, ["k3.public.client"], partitions=2)
    with KafkaSource(broker.bootstrap_servers, "probe", "k3") as source:
        assert source.topics() == ["k3.public.client"]
        with pytest.raises(SourceError, match="2 partitions"):
            list(source.read("k3.public.client", 0, 100))


def test_maintain_deletes_only_landed_records(broker: KafkaBroker, tmp_path: Path) -> None:
    topic = "k9.public.item"
    settings = load_settings(
        data_dir=tmp_path,
        topic_prefix="k9",
        contracts_dir=write_item_contract(tmp_path / "contracts"),
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_group_id="lander-k9",
        changes_retention_hours=0,
        pii_key="kafka-test-key-0123456789abcdef0123",
    )
    src = Source()
    src.snapshot([item_row(i) for i in range(8)])
    landed = len(src.records)
    src.transaction([("u", item_row(1, qty=7)), ("d", item_row(2))])
    write_topic(tmp_path / "recorded", topic, src.records, segment=1000)
    records = recorded(tmp_path / "recorded")[topic]
    create_topics(broker.bootstrap_servers, [topic])
    produce(broker.bootstrap_servers, {topic: records[:landed]})
    ingest(settings)
    produce(broker.bootstrap_servers, {topic: records[landed:]})  # not landed yet

    (trim,) = trim_kafka(settings, "run")

    assert (trim.action, trim.version_before, trim.version_after) == ("trim", 0, landed)
    source = KafkaSource(broker.bootstrap_servers, "probe-k9", "k9")
    try:  # the unlanded records are all there, from the first one that had not landed
        batches = list(source.read(topic, landed, 1000))
    finally:
        source.close()
    assert [b.first_offset for b in batches] == [landed]
    assert sum(b.count for b in batches) == len(records) - landed
    ingest(settings)
    silver = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    assert {(r["item_id"], r["qty"]) for r in silver} == {
        (k[0], row["qty"]) for k, row in src.state.items()
    }
    (again,) = trim_kafka(settings, "run2")  # the rest landed now: it goes too
    assert (again.action, again.version_after) == ("trim", len(records))
