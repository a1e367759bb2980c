"""Append change records to the topic log on disk, durably (docs/change-events.md).

The log is what a Kafka topic is for the Kafka source: Debezium's embedded engine hands
a batch to us, we append it to ``<root>/<topic>/<base offset>.jsonl`` and fsync, and only
then does the engine count it as processed. If the process dies between the two, the
engine resends the batch on restart: the lander removes those duplicates. A line torn
by a crash is cut off when the writer opens the topic again.

A segment is closed, and the next one started, once it holds ``segment_events`` lines or
``segment_bytes`` bytes, or was opened ``segment_seconds`` ago: the retention deletes only
segments that have landed and were last written long enough ago, so under a continuous
stream the log is trimmed only if its segments roll.
"""

from __future__ import annotations

import os
import time
from io import BufferedWriter
from pathlib import Path

from lakehouse.cdc.file_source import FileSource, topic_lock


class _Topic:
    def __init__(
        self, directory: Path, segment_events: int, segment_bytes: int, segment_seconds: float
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.segment_events = segment_events
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.file: BufferedWriter | None = None
        self.offset = 0  # of the next line
        self.in_segment = 0  # lines in the open segment
        self.bytes_in_segment = 0
        self.opened = time.monotonic()  # when the open segment was opened (or reopened)
        segments = FileSource(directory.parent).segments(directory.name)
        if segments:
            base, path = segments[-1]
            data = path.read_bytes()
            complete = data.rfind(b"\n") + 1
            if complete != len(data):  # a crash tore the last line: drop it
                with path.open("r+b") as f:
                    f.truncate(complete)
            self.in_segment = data.count(b"\n", 0, complete)
            self.bytes_in_segment = complete
            self.offset = base + self.in_segment
            if not self._full():
                self.file = path.open("ab")

    def append(self, lines: list[bytes]) -> None:
        with topic_lock(self.directory):
            if self.file is not None and os.fstat(self.file.fileno()).st_nlink == 0:
                # the lander deleted the segment once it had landed (the change log's
                # retention) and left an empty one at this offset: go on in that one
                self.file.close()
                self.file = None
                self.in_segment = self.bytes_in_segment = 0
            self._append(lines)

    def _full(self) -> bool:
        return (
            self.in_segment >= self.segment_events
            or self.bytes_in_segment >= self.segment_bytes
            or time.monotonic() - self.opened >= self.segment_seconds
        )

    def _append(self, lines: list[bytes]) -> None:
        for line in lines:
            if self.file is None or self._full():
                self._roll()
            assert self.file is not None
            data = line if line.endswith(b"\n") else line + b"\n"
            self.file.write(data)
            self.offset += 1
            self.in_segment += 1
            self.bytes_in_segment += len(data)

    def _roll(self) -> None:
        self.close()
        self.file = (self.directory / f"{self.offset:020d}.jsonl").open("ab")
        self.in_segment = self.bytes_in_segment = 0
        self.opened = time.monotonic()

    def sync(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class ChangeLogWriter:
    """Appends lines to the topics under ``root``; ``sync()`` makes them durable. A topic
    starts a new segment after ``segment_events`` lines, ``segment_bytes`` bytes or
    ``segment_seconds`` seconds, whichever comes first."""

    def __init__(
        self,
        root: Path,
        segment_events: int = 200_000,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_seconds: float = 3600.0,
    ) -> None:
        self.root = root
        self.segment_events = segment_events
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self._topics: dict[str, _Topic] = {}
        self._dirty: set[str] = set()

    def append(self, topic: str, lines: list[bytes]) -> None:
        handle = self._topics.get(topic)
        if handle is None:
            handle = self._topics[topic] = _Topic(
                self.root / topic, self.segment_events, self.segment_bytes, self.segment_seconds
            )
        handle.append(lines)
        self._dirty.add(topic)

    def offset(self, topic: str) -> int:
        """Offset the next line of ``topic`` will get."""
        handle = self._topics.get(topic)
        return handle.offset if handle else FileSource(self.root).end_offset(topic)

    def sync(self) -> None:
        for topic in self._dirty:
            self._topics[topic].sync()
        self._dirty.clear()

    def close(self) -> None:
        self.sync()
        for handle in self._topics.values():
            handle.close()

    def __enter__(self) -> ChangeLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
