"""Recorded change events laid out like Kafka topics (see docs/change-events.md).

``<root>/<topic>/<20-digit base offset>.jsonl``: one Debezium record per line; the offset
of a line is its segment's base offset plus its line number in the segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from lakehouse.exceptions import SourceError

_SEGMENT_SUFFIX = ".jsonl"
_NEWLINE = ord("\n")


@dataclass(frozen=True)
class RawBatch:
    """Consecutive raw records of one topic, as one buffer of ``count`` newline-ended
    lines; line ``i`` sits at offset ``first_offset + i``. Decoding parses the buffer as
    is; the lines are split out only when one of them has to be looked at alone."""

    topic: str
    first_offset: int
    data: bytes
    count: int

    @classmethod
    def from_lines(cls, topic: str, first_offset: int, lines: list[bytes]) -> RawBatch:
        return cls(topic, first_offset, b"".join(line + b"\n" for line in lines), len(lines))

    @cached_property
    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")[: self.count]

    @property
    def last_offset(self) -> int:
        return self.first_offset + self.count - 1


class FileSource:
    """Reads topics of recorded change events from a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def topics(self) -> list[str]:
        if not self.root.is_dir():
            raise SourceError(
                f"no recorded change events at {self.root}: run `lakehouse generate` first "
                "or set LAKEHOUSE_CHANGES_DIR"
            )
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob(f"*{_SEGMENT_SUFFIX}"))
        )

    def segments(self, topic: str) -> list[tuple[int, Path]]:
        segments = []
        for path in (self.root / topic).glob(f"*{_SEGMENT_SUFFIX}"):
            stem = path.name[: -len(_SEGMENT_SUFFIX)]
            if len(stem) != 20 or not stem.isdigit():
                raise SourceError(
                    f"{path}: segment names must be the 20-digit offset of their first line"
                )
            segments.append((int(stem), path))
        return sorted(segments)

    def end_offset(self, topic: str) -> int:
        """Offset one past the last complete line of the topic."""
        segments = self.segments(topic)
        if not segments:
            return 0
        base, path = segments[-1]
        return base + path.read_bytes().count(b"\n")

    def read(self, topic: str, start: int, batch_size: int) -> Iterator[RawBatch]:
        """Complete lines of ``topic`` from offset ``start`` on, in batches of at most
        ``batch_size`` (a trailing line without newline is still being written: skipped)."""
        segments = self.segments(topic)
        for i, (base, path) in enumerate(segments):
            next_base = segments[i + 1][0] if i + 1 < len(segments) else None
            if next_base is not None and next_base <= start:
                continue
            data = path.read_bytes()
            data = data[: data.rfind(b"\n") + 1]  # drop a line still being written
            count = data.count(b"\n")
            if next_base is not None and base + count != next_base:
                raise SourceError(
                    f"{path}: holds {count} lines but the next segment starts at "
                    f"offset {next_base}; the topic's log is inconsistent"
                )
            skip = max(0, start - base)
            if skip == 0 and count <= batch_size:  # the common case: the whole segment
                if count:
                    yield RawBatch(topic, base, data, count)
                continue
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _NEWLINE) + 1
            for lo in range(skip, count, batch_size):
                hi = min(lo + batch_size, count)
                first_byte = int(ends[lo - 1]) if lo else 0
                yield RawBatch(topic, base + lo, data[first_byte : int(ends[hi - 1])], hi - lo)

    def committed(self, topic: str, last_offset: int) -> None:
        """Nothing to acknowledge: the lake's app transactions are the only position."""
