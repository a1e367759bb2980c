"""The file source reads what was appended since its last look, and notices a segment
that was rewritten rather than appended to."""

from __future__ import annotations

from pathlib import Path

from lakehouse.cdc.file_source import FileSource

TOPIC = "oltp.public.item"


def _lines(source: FileSource, start: int, batch: int = 3) -> list[bytes]:
    return [line for b in source.read(TOPIC, start, batch) for line in b.lines]


def test_appends_torn_lines_and_rewrites(tmp_path: Path) -> None:
    segment = tmp_path / TOPIC / f"{0:020d}.jsonl"
    segment.parent.mkdir()
    segment.write_bytes(b"a\nb\nc\n")
    source = FileSource(tmp_path)
    assert source.end_offset(TOPIC) == 3
    assert _lines(source, 1) == [b"b", b"c"]

    with segment.open("ab") as f:  # more lines, the last one still being written
        f.write(b"d\ne\nf-partial")
    assert source.end_offset(TOPIC) == 5
    assert _lines(source, 2) == [b"c", b"d", b"e"]
    with segment.open("ab") as f:
        f.write(b"-done\n")
    assert _lines(FileSource(tmp_path), 4) == [b"e", b"f-partial-done"]

    segment.write_bytes(b"x\ny\nz\nw\nv\nu\nt\n")  # rewritten in place, longer than before
    assert source.end_offset(TOPIC) == 7
    assert _lines(source, 0, batch=2) == [b"x", b"y", b"z", b"w", b"v", b"u", b"t"]
