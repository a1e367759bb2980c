# ruff: noqa: E501  (the fixture records read best one per line)
"""SQL Server change events: records in exactly the shape Debezium's SQL Server connector
emits (no live SQL Server exists here), ordered by commit LSN, change LSN and event serial
number, including LSNs wider than 64 bits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.settings import Settings
from tests.support.debezium import ITEM_CONTRACT, item_row, write_topic

pytestmark = pytest.mark.integration
TOPIC = "oltp.shop.dbo.item"  # <topic.prefix>.<database>.<schema>.<table>


def _source(
    commit_lsn: str | None, change_lsn: str | None, serial: int | None, snapshot: str
) -> dict[str, Any]:
    return {
        "version": "3.6.3.Final",
        "connector": "sqlserver",
        "name": "oltp",
        "ts_ms": 1_700_000_000_000,
        "snapshot": snapshot,
        "db": "shop",
        "sequence": None,
        "ts_us": 1_700_000_000_000_000,
        "ts_ns": 1_700_000_000_000_000_000,
        "schema": "dbo",
        "table": "item",
        "change_lsn": change_lsn,
        "commit_lsn": commit_lsn,
        "event_serial_no": serial,
    }


def _record(
    op: str, row: dict[str, Any], source: dict[str, Any], before: dict | None = None
) -> bytes:
    value = {
        "before": before if op in ("u", "d") else None,
        "after": None if op == "d" else row,
        "source": source,
        "transaction": None,
        "op": op,
        "ts_ms": 1_700_000_000_500,
        "ts_us": 1_700_000_000_500_000,
        "ts_ns": 1_700_000_000_500_000_000,
    }
    return orjson.dumps({"key": {"item_id": row["item_id"], "shop": row["shop"]}, "value": value})


def _settings(tmp_path: Path) -> Settings:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "item.yml").write_text(ITEM_CONTRACT.replace("schema: public", "schema: dbo"))
    return Settings(data_dir=tmp_path, contracts_dir=contracts)


def test_events_apply_in_sql_server_log_order(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    snap = "0000002a:00000b10:0001"
    records = [
        # snapshot: no change LSN, no serial number
        _record("r", item_row(1, qty=1), _source(snap, None, None, "first")),
        _record("r", item_row(2, qty=1), _source(snap, None, None, "last")),
        # a transaction committed at ...:0005 whose changes the file lists out of order
        _record("u", item_row(1, qty=3), _source("0000002b:00000020:0005", "0000002b:00000020:0003", 1, "false")),
        _record("u", item_row(1, qty=2), _source("0000002b:00000020:0005", "0000002b:00000020:0002", 1, "false")),
        # two events at one change LSN (a primary-key update): serial numbers order them
        _record("d", item_row(2, qty=1), _source("0000002c:00000001:0002", "0000002c:00000001:0001", 1, "false"), item_row(2, qty=1)),
        _record("c", item_row(2, qty=7), _source("0000002c:00000001:0002", "0000002c:00000001:0001", 2, "false")),
        # LSNs wider than 64 bits sort after the smaller ones, whatever the file order
        _record("u", item_row(3, qty=9), _source("fffffffe:ffffffff:ffff", "fffffffe:ffffffff:fffe", 1, "false")),
        _record("c", item_row(3, qty=5), _source("0000002d:00000001:0002", "0000002d:00000001:0001", 1, "false")),
        # a connector restart redelivers an event
        _record("u", item_row(1, qty=3), _source("0000002b:00000020:0005", "0000002b:00000020:0003", 1, "false")),
        # a malformed position goes to the dead letters
        _record("u", item_row(1, qty=100), _source("not-an-lsn", "0000002b:00000020:0003", 1, "false")),
    ]  # fmt: skip
    write_topic(s.changes_path, TOPIC, records)

    report = ingest(s)

    assert report.rejected == 1
    assert [t.duplicates for t in report.topics] == [1]
    silver = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    assert {r["item_id"]: r["qty"] for r in silver} == {1: 3, 2: 7, 3: 9}
    dlq = DeltaTable(s.table_uri("dead_letter", "events")).to_pyarrow_table().to_pylist()
    assert "commit_lsn is not a SQL Server LSN" in dlq[0]["reason"]
    bronze = DeltaTable(s.table_uri("bronze", "item")).to_pyarrow_table().to_pylist()
    wide = next(r for r in bronze if r["item_id"] == 3 and r["_op"] == "u")
    assert wide["_commit_pos"] == int("fffffffeffffffffffff", 16)
    assert wide["_event_pos"] == (int("fffffffefffffffffffe", 16) << 20) + 1
