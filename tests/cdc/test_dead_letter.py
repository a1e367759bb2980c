"""Bad events never stop ingest: each reaches the dead-letter table with its reason."""

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


def _bad(src: Source) -> dict[str, bytes]:
    good = orjson.loads(src.records[-1])

    def variant(**value_changes: object) -> bytes:
        v = dict(good["value"], **value_changes)
        return orjson.dumps({"key": good["key"], "value": v})

    after = dict(good["value"]["after"])
    return {
        "not a JSON record": b'{"key": {"item_id": 1, "shop"',
        "bad type": variant(after=dict(after, qty="lots")),
        "unknown op": variant(op="z"),
        "missing key column": orjson.dumps({"key": {"shop": "a"}, "value": good["value"]}),
        "without an 'after' image": variant(after=None),
        "is null but its contract says not null": variant(after=dict(after, price=None)),
        "does not convert to decimal(10,2)": variant(after=dict(after, price="12.345")),
        "does not convert to timestamptz": variant(after=dict(after, updated_at="yesterday")),
        "unsupported connector": variant(source=dict(good["value"]["source"], connector="db2")),
    }


def test_bad_events_go_to_the_dead_letter_table_and_ingest_goes_on(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([item_row(i) for i in range(3)])
    src.transaction([("u", item_row(1, qty=9))])
    bad = _bad(src)
    src.transaction([("c", item_row(7))])
    records = src.records[:4] + list(bad.values()) + src.records[4:]
    write_topic(s.changes_path, TOPIC, records, segment=5)

    report = ingest(s)

    assert report.rejected == len(bad)
    dlq = DeltaTable(s.table_uri("dead_letter", "events")).to_pyarrow_table().sort_by("offset")
    dlq = dlq.to_pylist()
    assert [r["offset"] for r in dlq] == list(range(4, 4 + len(bad)))
    for row, (expected, raw) in zip(dlq, bad.items(), strict=True):
        assert expected in row["reason"], row["reason"]
        if expected == "not a JSON record":  # no copy: nothing says which part is personal
            assert row["raw"].startswith(f"<not a JSON record: {len(raw)} bytes, pii:")
        else:  # the item contract is reviewed and has no PII column: kept as it came
            assert row["raw"] == raw.decode()
        assert row["topic"] == TOPIC
    silver = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table()
    assert sorted(silver.column("item_id").to_pylist()) == [0, 1, 2, 7]
    # a replay writes no second copy of the dead letters
    ingest(s)
    assert DeltaTable(s.table_uri("dead_letter", "events")).to_pyarrow_table().num_rows == len(bad)
