"""Record a simulated database's changes as Debezium's PostgreSQL connector emits them.

The recorder plays the part of PostgreSQL's WAL and of the connector:

* every change gets a WAL position (LSN); a transaction's changes are streamed together,
  in commit order, and each carries ``sequence = [last commit LSN, own LSN]``;
* concurrent transactions interleave their changes in the WAL: their LSNs mix although
  they are streamed one after the other (so LSN alone does not order events);
* a delete is followed by a tombstone (``value: null``);
* the initial snapshot emits every row as ``op: r`` with one LSN and ``sequence
  [null, lsn]``;
* after a connector restart the events since the last flushed offset come again.

Records go to ``<root>/<topic>/<base offset>.jsonl`` segments (docs/change-events.md).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from io import BufferedWriter
from pathlib import Path
from typing import Any

import orjson

CONNECTOR_VERSION = "3.6.3.Final"
DATABASE = "shop"

Row = dict[str, Any]


@dataclass
class Change:
    table: str
    op: str  # c, u, d
    key: Row
    before: Row | None
    after: Row | None


@dataclass
class Transaction:
    """Changes of one source transaction, in statement order."""

    commit_us: int
    changes: list[Change] = field(default_factory=list)

    def keys(self) -> set[tuple[str, tuple[Any, ...]]]:
        return {(c.table, tuple(c.key.values())) for c in self.changes}


class _TopicWriter:
    """Appends lines to a topic's segments, starting a new one every ``segment_events``."""

    def __init__(self, directory: Path, segment_events: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment_events = segment_events
        self.offset = 0
        self._file: BufferedWriter | None = None

    def write(self, line: bytes) -> None:
        if self.offset % self.segment_events == 0:
            self.close()
            self._file = open(self.directory / f"{self.offset:020d}.jsonl", "wb")  # noqa: SIM115
        assert self._file is not None
        self._file.write(line)
        self.offset += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Recorder:
    """Turns committed transactions into Debezium records on disk."""

    def __init__(
        self,
        root: Path,
        topic_prefix: str,
        primary_keys: dict[str, tuple[str, ...]],
        rng: random.Random,
        *,
        segment_events: int,
        duplicate_rate: float,
        interleave_rate: float = 0.25,
        restart_every: int = 20_000,
    ) -> None:
        self.root = root
        self.topic_prefix = topic_prefix
        self.primary_keys = primary_keys
        self.rng = rng
        self.segment_events = segment_events
        self.duplicate_rate = duplicate_rate
        self.interleave_rate = interleave_rate
        self.restart_every = restart_every
        self.writers: dict[str, _TopicWriter] = {}
        self.lsn = 24_000_000
        self.last_commit: int | None = None
        self.tx_id = 740
        self.recording = False
        self.events: Counter[str] = Counter()  # distinct change events per table
        self.redelivered: Counter[str] = Counter()
        self.versions: Counter[tuple[str, tuple[Any, ...]]] = Counter()  # r/c/u per key
        self._pending: Transaction | None = None
        self._recent: deque[tuple[str, bytes]] = deque(maxlen=4 * max(1, self._restart_size()))
        self._since_restart = 0
        self._next_restart = self._draw_restart()

    # -- what callers use -----------------------------------------------------------

    def key_of(self, table: str, row: Row) -> Row:
        return {k: row[k] for k in self.primary_keys[table]}

    def snapshot(self, tables: dict[str, list[Row]], ts_us: int) -> None:
        """Emit the initial snapshot of every table and start streaming."""
        self.recording = True
        self.tx_id += 1
        self.lsn += 56
        ts_ms = ts_us // 1000
        sequence = orjson.dumps([None, str(self.lsn)]).decode()
        names = [t for t, rows in tables.items() if rows]
        for t_index, table in enumerate(names):
            rows = tables[table]
            for i, row in enumerate(rows):
                first = t_index == 0 and i == 0
                last = t_index == len(names) - 1 and i == len(rows) - 1
                mark = "first" if first else "last" if last else "true"
                value = self._value(
                    None, row, self._source(table, self.lsn, ts_ms, mark, sequence), "r", ts_ms + 5
                )
                key = self.key_of(table, row)
                self._emit(table, key, value)
                self.versions[(table, tuple(key.values()))] += 1
        # as the connector does: the first transaction streamed after the snapshot carries
        # no previous commit LSN in its `sequence`
        self.last_commit = None

    def commit(self, tx: Transaction) -> None:
        """Commit a transaction; some are held back to interleave with the next one."""
        if not self.recording or not tx.changes:
            return
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if pending.keys().isdisjoint(tx.keys()):
                self._stream([pending, tx])
                return
            self._stream([pending])
        if self.rng.random() < self.interleave_rate:
            self._pending = tx
        else:
            self._stream([tx])

    def close(self) -> None:
        if self._pending is not None:
            self._stream([self._pending])
            self._pending = None
        for writer in self.writers.values():
            writer.close()

    def topic(self, table: str) -> str:
        return f"{self.topic_prefix}.public.{table}"

    # -- the WAL and the connector ----------------------------------------------------

    def _stream(self, txs: list[Transaction]) -> None:
        """Concurrent transactions: their changes take interleaved LSNs in the WAL, then
        they commit in the given order and are streamed one transaction at a time."""
        lsns: list[list[int]] = [[] for _ in txs]
        pointers = [0] * len(txs)
        while any(p < len(t.changes) for p, t in zip(pointers, txs, strict=True)):
            i = self.rng.choice([j for j, t in enumerate(txs) if pointers[j] < len(t.changes)])
            self.lsn += self.rng.choice((40, 56, 72, 104))
            lsns[i].append(self.lsn)
            pointers[i] += 1
        for tx, tx_lsns in zip(txs, lsns, strict=True):
            self.tx_id += 1
            self.lsn += 48
            commit_lsn = self.lsn
            sequence_head = None if self.last_commit is None else str(self.last_commit)
            ts_ms = tx.commit_us // 1000
            for change, lsn in zip(tx.changes, tx_lsns, strict=True):
                sequence = orjson.dumps([sequence_head, str(lsn)]).decode()
                value = self._value(
                    change.before,
                    change.after,
                    self._source(change.table, lsn, ts_ms, "false", sequence),
                    change.op,
                    ts_ms + self.rng.randint(3, 900),
                )
                self._emit(change.table, change.key, value)
                if change.op == "d":
                    self._emit(change.table, change.key, None, count=False)
                else:
                    self.versions[(change.table, tuple(change.key.values()))] += 1
            self.last_commit = commit_lsn

    def _source(self, table: str, lsn: int, ts_ms: int, snapshot: str, sequence: str) -> Row:
        return {
            "version": CONNECTOR_VERSION,
            "connector": "postgresql",
            "name": self.topic_prefix,
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "db": DATABASE,
            "sequence": sequence,
            "ts_us": ts_ms * 1000,
            "ts_ns": ts_ms * 1_000_000,
            "schema": "public",
            "table": table,
            "txId": self.tx_id,
            "lsn": lsn,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }

    @staticmethod
    def _value(before: Row | None, after: Row | None, source: Row, op: str, ts_ms: int) -> Row:
        """The envelope, fields in the order Debezium 3.x writes them."""
        return {
            "before": before,
            "after": after,
            "source": source,
            "transaction": None,
            "op": op,
            "ts_ms": ts_ms,
            "ts_us": ts_ms * 1000,
            "ts_ns": ts_ms * 1_000_000,
        }

    def _emit(self, table: str, key: Row, value: Row | None, *, count: bool = True) -> None:
        line = orjson.dumps({"key": key, "value": value}) + b"\n"
        self._write(table, line)
        if count:
            self.events[table] += 1
        self._recent.append((table, line))
        self._since_restart += 1
        if self._since_restart >= self._next_restart:
            self._restart()

    def _write(self, table: str, line: bytes) -> None:
        writer = self.writers.get(table)
        if writer is None:
            writer = self.writers[table] = _TopicWriter(
                self.root / self.topic(table), self.segment_events
            )
        writer.write(line)

    def _restart_size(self) -> int:
        return round(self.duplicate_rate * self.restart_every)

    def _draw_restart(self) -> int:
        return self.rng.randint(self.restart_every // 2, self.restart_every * 3 // 2)

    def _restart(self) -> None:
        """The connector restarts and resends what it had not flushed as its offset."""
        self._since_restart = 0
        self._next_restart = self._draw_restart()
        size = min(len(self._recent), round(self._restart_size() * self.rng.uniform(0.5, 1.5)))
        for table, line in list(self._recent)[len(self._recent) - size :]:
            self._write(table, line)
            self.redelivered[table] += 1

    @property
    def offsets(self) -> dict[str, int]:
        return {self.topic(t): w.offset for t, w in self.writers.items()}
