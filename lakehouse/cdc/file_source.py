"""Recorded change events laid out like Kafka topics (see docs/change-events.md).

``<root>/<topic>/<20-digit base offset>.jsonl``: one Debezium record per line; the offset
of a line is its segment's base offset plus its line number in the segment.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from lakehouse.exceptions import SourceError

_SEGMENT_SUFFIX = ".jsonl"
_LOCK = ".lock"
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
        return base + len(_line_ends(path))

    def read(self, topic: str, start: int, batch_size: int) -> Iterator[RawBatch]:
        """Complete lines of ``topic`` from offset ``start`` on, in batches of at most
        ``batch_size`` (a trailing line without newline is still being written: skipped)."""
        segments = self.segments(topic)
        for i, (base, path) in enumerate(segments):
            next_base = segments[i + 1][0] if i + 1 < len(segments) else None
            if next_base is not None and next_base <= start:
                continue
            ends = _line_ends(path)
            count = len(ends)
            if next_base is not None and base + count != next_base:
                raise SourceError(
                    f"{path}: holds {count} lines but the next segment starts at "
                    f"offset {next_base}; the topic's log is inconsistent"
                )
            skip = max(0, start - base)
            if skip >= count:
                continue
            with path.open("rb") as f:
                for lo in range(skip, count, batch_size):
                    hi = min(lo + batch_size, count)
                    first_byte = int(ends[lo - 1]) if lo else 0
                    f.seek(first_byte)
                    data = f.read(int(ends[hi - 1]) - first_byte)
                    yield RawBatch(topic, base + lo, data, hi - lo)

    def committed(self, topic: str, last_offset: int) -> None:
        """Nothing to acknowledge: the lake's app transactions are the only position."""

    def forget(
        self, topic: str, landed_through: int, older_than_seconds: float, *, dry_run: bool = False
    ) -> int:
        """Delete the segments of ``topic`` whose every line has landed (offset at most
        ``landed_through``) and that were last written more than ``older_than_seconds``
        ago: the lake is the record, and the log holds the source's raw personal data.
        Offsets are in the segment names, so the others keep theirs; a deleted last
        segment is replaced by an empty one named by the topic's end offset, where the
        writer goes on. Under the topic's lock, so no line is appended meanwhile.
        Returns how many segments were deleted (would be, with ``dry_run``)."""
        directory = self.root / topic
        if not directory.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        deleted = 0
        with topic_lock(directory):
            segments = self.segments(topic)
            if not segments:
                return 0
            last_base, last_path = segments[-1]
            ends = [base for base, _ in segments[1:]]
            ends.append(last_base + len(_line_ends(last_path)))
            for (base, path), end in zip(segments, ends, strict=True):
                if end - 1 > landed_through or end == base:  # not all landed, or empty
                    break
                if path.stat().st_mtime > cutoff:
                    continue
                if dry_run:
                    deleted += 1
                    continue
                if path == last_path:  # the topic goes on from its end offset
                    (directory / f"{end:020d}{_SEGMENT_SUFFIX}").touch()
                path.unlink()
                _INDEXES.pop(path, None)
                deleted += 1
        return deleted


@contextmanager
def topic_lock(directory: Path) -> Iterator[None]:
    """The lock of a topic's log: the writer holds it while it appends, ``forget``
    while it deletes, so a line is never written into a segment being deleted."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class _LineIndex:
    """Where the complete lines of a segment end, as far as it has been read."""

    inode: int
    ends: np.ndarray  # byte offset one past each complete line
    mark: bytes  # the bytes just before the last end: a rewritten file no longer has them

    @property
    def size(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0


# Segments only grow (the writer appends; a torn last line is cut, never a complete one),
# so a follower that comes back every second reads only what was appended since.
_INDEXES: dict[Path, _LineIndex] = {}
_MARK = 16


def _line_ends(path: Path) -> np.ndarray:
    stat = path.stat()
    index = _INDEXES.get(path)
    with path.open("rb") as f:
        if index is not None:
            f.seek(max(0, index.size - _MARK))
            still = index.inode == stat.st_ino and stat.st_size >= index.size
            if not still or f.read(min(_MARK, index.size)) != index.mark:
                index = None
        if index is None:
            index = _LineIndex(stat.st_ino, np.empty(0, np.int64), b"")
        if stat.st_size > index.size:
            f.seek(index.size)
            tail = f.read(stat.st_size - index.size)
            new = np.flatnonzero(np.frombuffer(tail, np.uint8) == _NEWLINE) + 1 + index.size
            if len(new):
                ends = np.concatenate([index.ends, new.astype(np.int64)])
                end = int(ends[-1])
                lo = max(0, end - _MARK) - index.size
                mark = tail[lo : end - index.size] if lo >= 0 else b""
                if lo < 0:  # the mark reaches back before this read
                    f.seek(max(0, end - _MARK))
                    mark = f.read(min(_MARK, end))
                index = _LineIndex(stat.st_ino, ends, mark)
    _INDEXES[path] = index
    return index.ends
