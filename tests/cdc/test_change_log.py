"""The topic log the capture writes: offsets continue across restarts, segments roll, a
line torn by a crash is dropped, and the file source reads back exactly what was written."""

from __future__ import annotations

from pathlib import Path

from lakehouse.cdc.change_log import ChangeLogWriter
from lakehouse.cdc.file_source import FileSource

TOPIC = "oltp.public.item"


def _read_all(root: Path) -> list[bytes]:
    lines: list[bytes] = []
    for batch in FileSource(root).read(TOPIC, 0, 7):
        assert batch.first_offset == len(lines)
        lines.extend(batch.lines)
    return lines


def test_offsets_continue_across_writers_and_segments_roll(tmp_path: Path) -> None:
    expected = [f'{{"key": {i}}}'.encode() for i in range(25)]
    with ChangeLogWriter(tmp_path, segment_events=10) as writer:
        writer.append(TOPIC, expected[:12])
        assert writer.offset(TOPIC) == 12
    with ChangeLogWriter(tmp_path, segment_events=10) as writer:  # a restart
        assert writer.offset(TOPIC) == 12
        writer.append(TOPIC, expected[12:])
    names = sorted(p.name for p in (tmp_path / TOPIC).glob("*.jsonl"))  # and the .lock
    assert names == [f"{n:020d}.jsonl" for n in (0, 10, 20)]
    assert _read_all(tmp_path) == expected
    assert FileSource(tmp_path).end_offset(TOPIC) == 25


def test_a_line_torn_by_a_crash_is_dropped_when_writing_resumes(tmp_path: Path) -> None:
    with ChangeLogWriter(tmp_path) as writer:
        writer.append(TOPIC, [b'{"a": 1}', b'{"a": 2}'])
    segment = tmp_path / TOPIC / f"{0:020d}.jsonl"
    with segment.open("ab") as f:
        f.write(b'{"a": 3, "tor')  # the process died mid-line
    assert FileSource(tmp_path).end_offset(TOPIC) == 2  # readers never see it
    with ChangeLogWriter(tmp_path) as writer:
        assert writer.offset(TOPIC) == 2
        writer.append(TOPIC, [b'{"a": 3}'])
    assert _read_all(tmp_path) == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
