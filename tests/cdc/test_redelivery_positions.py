"""The first transaction PostgreSQL streams after a connector start carries no previous
commit LSN (``sequence[0]`` is null); redelivered after a restart, the same events carry
it. Seen in a live run: the event is one event, bronze must hold it once."""

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


def _without_previous_commit(record: bytes) -> bytes:
    event = orjson.loads(record)
    source = event["value"]["source"]
    source["sequence"] = orjson.dumps([None, orjson.loads(source["sequence"])[1]]).decode()
    return orjson.dumps(event)


def test_an_event_redelivered_with_its_previous_commit_lands_once(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([item_row(i) for i in range(3)])
    first_streamed = len(src.records)
    src.transaction([("u", item_row(1, qty=9)), ("u", item_row(2, qty=4))])
    streamed = src.records[first_streamed:]
    records = src.records[:first_streamed] + [_without_previous_commit(r) for r in streamed]
    write_topic(s.changes_path, TOPIC, records)
    ingest(s)
    write_topic(s.changes_path, TOPIC, records + streamed)  # the restart resends them
    ingest(s)

    bronze = DeltaTable(s.table_uri("bronze", "item")).to_pyarrow_table()
    assert bronze.num_rows == 5  # three snapshot reads, two updates
    silver = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    assert {r["item_id"]: r["qty"] for r in silver} == {0: 1, 1: 9, 2: 4}
