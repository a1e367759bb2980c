"""Build Debezium PostgreSQL change records for tests, as the connector writes them.

A tiny independent model of a source database: transactions commit in order, every
change gets an LSN, and ``sequence`` carries the previous commit's LSN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ITEM_CONTRACT = """\
table: item
schema: public
primary_key: [item_id, shop]
columns:
  - {name: item_id, type: bigint, nullable: false}
  - {name: shop, type: string, nullable: false}
  - {name: name, type: string}
  - {name: qty, type: int, nullable: false}
  - {name: price, type: "decimal(10,2)", nullable: false}
  - {name: sold_on, type: date}
  - {name: seen_at, type: timestamp}
  - {name: updated_at, type: timestamptz, nullable: false}
"""


def write_item_contract(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "item.yml").write_text(ITEM_CONTRACT)
    return directory


def item_row(item_id: int, shop: str = "a", qty: int = 1, price: str = "1.00", **kw: Any) -> dict:
    row = {
        "item_id": item_id,
        "shop": shop,
        "name": kw.get("name", f"item {item_id}"),
        "qty": qty,
        "price": price,
        "sold_on": kw.get("sold_on", 19000),
        "seen_at": kw.get("seen_at", 1_700_000_000_000_000),
        "updated_at": kw.get("updated_at", "2024-01-01T00:00:00.000000Z"),
    }
    return row


@dataclass
class Source:
    """Emits change records of one table; tracks the true current state."""

    table: str = "item"
    key: tuple[str, ...] = ("item_id", "shop")
    lsn: int = 1000
    last_commit: int | None = None
    tx: int = 500
    ts_ms: int = 1_700_000_000_000
    state: dict[tuple, dict] = field(default_factory=dict)
    records: list[bytes] = field(default_factory=list)

    def _key(self, row: dict) -> dict:
        return {k: row[k] for k in self.key}

    def _source(self, lsn: int, snapshot: str, sequence: list) -> dict:
        return {
            "version": "3.6.3.Final",
            "connector": "postgresql",
            "name": "oltp",
            "ts_ms": self.ts_ms,
            "snapshot": snapshot,
            "db": "shop",
            "sequence": orjson.dumps(sequence).decode(),
            "schema": "public",
            "table": self.table,
            "txId": self.tx,
            "lsn": lsn,
            "xmin": None,
        }

    def _emit(self, key: dict, value: dict | None) -> None:
        self.records.append(orjson.dumps({"key": key, "value": value}))

    def snapshot(self, rows: list[dict]) -> None:
        self.lsn += 10
        self.tx += 1
        for i, row in enumerate(rows):
            mark = "first" if i == 0 else "last" if i == len(rows) - 1 else "true"
            value = {
                "before": None,
                "after": row,
                "op": "r",
                "ts_ms": self.ts_ms,
                "source": self._source(self.lsn, mark, [None, str(self.lsn)]),
                "transaction": None,
            }
            self._emit(self._key(row), value)
            self.state[tuple(row[k] for k in self.key)] = row
        self.last_commit = self.lsn

    def incremental_snapshot(self, rows: list[dict]) -> None:
        """Rows of a chunk of an incremental snapshot, as the connector sends them when it
        streams the watermark that closes the chunk's window (a transaction of its own):
        no ``lsn``, that event's ``sequence``."""
        self.tx += 1
        self.lsn += 8  # the close watermark's insert
        prev = str(self.last_commit) if self.last_commit is not None else None
        for row in rows:
            source = self._source(self.lsn, "incremental", [prev, str(self.lsn)])
            source.update(lsn=None, txId=None)
            value = {"before": None, "after": row, "op": "r", "ts_ms": self.ts_ms}
            self._emit(self._key(row), {**value, "source": source, "transaction": None})
            self.state[tuple(row[k] for k in self.key)] = row
        self.lsn += 8
        self.last_commit = self.lsn

    def transaction(self, changes: list[tuple[str, dict]]) -> None:
        """Commit one transaction of ``("c"|"u"|"d", row)`` changes."""
        self.tx += 1
        self.ts_ms += 1000
        prev = str(self.last_commit) if self.last_commit is not None else None
        for op, row in changes:
            self.lsn += 8
            k = tuple(row[c] for c in self.key)
            before = self.state.get(k)
            if op == "d":
                value = {
                    "before": before,
                    "after": None,
                    "op": "d",
                    "ts_ms": self.ts_ms,
                    "source": self._source(self.lsn, "false", [prev, str(self.lsn)]),
                    "transaction": None,
                }
                self._emit(self._key(row), value)
                self._emit(self._key(row), None)
                self.state.pop(k, None)
            else:
                value = {
                    "before": before if op == "u" else None,
                    "after": row,
                    "op": op,
                    "ts_ms": self.ts_ms,
                    "source": self._source(self.lsn, "false", [prev, str(self.lsn)]),
                    "transaction": None,
                }
                self._emit(self._key(row), value)
                self.state[k] = row
        self.lsn += 8
        self.last_commit = self.lsn


def write_topic(changes_dir: Path, topic: str, records: list[bytes], segment: int = 1000) -> None:
    """Write records as log segments named by their base offset."""
    directory = changes_dir / topic
    directory.mkdir(parents=True, exist_ok=True)
    for base in range(0, max(len(records), 1), segment):
        chunk = records[base : base + segment]
        (directory / f"{base:020d}.jsonl").write_bytes(b"".join(r + b"\n" for r in chunk))
