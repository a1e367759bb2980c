"""A record without a value is a dead letter, not a tombstone. A tombstone is a record
with the deleted row's key and ``"value": null`` (Debezium's after a delete, Kafka's
record with a null value); one that lost its value field, or a null value without the
key, is malformed and lands in the dead-letter table with its reason."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

pytestmark = pytest.mark.integration
TOPIC = "oltp.public.item"


def test_a_record_without_a_value_is_a_dead_letter_and_a_tombstone_is_not(
    tmp_path: Path,
) -> None:
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([item_row(i) for i in range(3)])
    src.transaction([("d", item_row(1))])  # the delete, then its tombstone
    tombstone = src.records[-1]
    assert orjson.loads(tombstone) == {"key": {"item_id": 1, "shop": "a"}, "value": None}
    bad = {
        "record without a value": b'{"key": {"item_id": 2, "shop": "a"}}',
        "tombstone without the key": b'{"key": null, "value": null}',
        "tombstone without the key ": b'{"key": {"shop": "a"}, "value": null}',
    }
    src.transaction([("c", item_row(7))])
    records = src.records[:5] + list(bad.values()) + src.records[5:]
    write_topic(s.changes_path, TOPIC, records)

    report = ingest(s)

    [topic] = report.topics
    assert (topic.tombstones, topic.rejected) == (1, len(bad))
    dlq = DeltaTable(s.table_uri("dead_letter", "events")).to_pyarrow_table().sort_by("offset")
    rows = dlq.to_pylist()
    assert [r["offset"] for r in rows] == [5, 6, 7]  # by identity: the tombstone is not one
    for row, (reason, raw) in zip(rows, bad.items(), strict=True):
        assert reason.strip() in row["reason"], row["reason"]
        assert orjson.loads(row["raw"]) == orjson.loads(raw)  # as landed (PII masked: none here)
    silver = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table()
    assert sorted(silver.column("item_id").to_pylist()) == sorted(k[0] for k in src.state)
