"""The change-event log is deleted once it has landed and is older than the retention;
what has not landed, or is younger, stays, and offsets never move."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.change_log import ChangeLogWriter
from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.kafka_sink import KafkaSink
from lakehouse.cdc.lander import ingest
from lakehouse.cdc.trim import trim_change_log
from lakehouse.settings import load_settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

TOPIC = "oltp.public.item"


def _segments(root: Path) -> list[str]:
    return [p.name[:20].lstrip("0") or "0" for p in sorted((root / TOPIC).glob("*.jsonl"))]


def _log(root: Path, lines: int, segment: int) -> None:
    write_topic(root, TOPIC, [b'{"n": %d}' % i for i in range(lines)], segment=segment)


def _age(root: Path, hours: float) -> None:
    past = time.time() - hours * 3600
    for path in (root / TOPIC).glob("*.jsonl"):
        os.utime(path, (past, past))


def test_only_landed_and_old_segments_are_deleted(tmp_path: Path) -> None:
    _log(tmp_path, 12, segment=4)  # segments at 0, 4, 8
    source = FileSource(tmp_path)
    assert source.forget(TOPIC, landed_through=11, older_than_seconds=3600) == 0  # young
    _age(tmp_path, 2)
    assert source.forget(TOPIC, landed_through=6, older_than_seconds=3600) == 1
    assert _segments(tmp_path) == ["4", "8"]  # 4..7 has not all landed
    # offsets are the segments' names: the rest reads as before
    batch = next(source.read(TOPIC, 5, 100))
    assert (batch.first_offset, batch.lines[0]) == (5, b'{"n": 5}')
    assert source.end_offset(TOPIC) == 12

    # all landed: the last segment goes too, an empty one keeps the topic's end
    assert source.forget(TOPIC, landed_through=11, older_than_seconds=3600) == 2
    assert _segments(tmp_path) == ["12"]
    assert source.end_offset(TOPIC) == 12 and source.topics() == [TOPIC]
    assert list(source.read(TOPIC, 0, 100)) == []


def test_the_writer_goes_on_after_its_segment_was_deleted(tmp_path: Path) -> None:
    with ChangeLogWriter(tmp_path, segment_events=100) as writer:
        writer.append(TOPIC, [b'{"n": %d}' % i for i in range(5)])
        writer.sync()
        # the lander deletes the open segment under the topic's lock
        assert FileSource(tmp_path).forget(TOPIC, landed_through=4, older_than_seconds=0) == 1
        writer.append(TOPIC, [b'{"n": 5}', b'{"n": 6}'])
        writer.sync()
        assert writer.offset(TOPIC) == 7
    batch = next(FileSource(tmp_path).read(TOPIC, 0, 100))
    assert batch.first_offset == 5 and batch.lines == [b'{"n": 5}', b'{"n": 6}']
    # a writer started afresh goes on from the empty segment's offset
    FileSource(tmp_path).forget(TOPIC, landed_through=6, older_than_seconds=0)
    with ChangeLogWriter(tmp_path) as writer:
        assert writer.offset(TOPIC) == 7


@pytest.mark.integration
@pytest.mark.parametrize("hours", [0.0, 24.0])
def test_the_lander_deletes_what_landed_after_the_retention(tmp_path: Path, hours: float) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        contracts_dir=write_item_contract(tmp_path / "contracts"),
        changes_retention_hours=hours,
    )
    src = Source()
    src.snapshot([item_row(i) for i in range(6)])
    src.transaction([("u", item_row(1, qty=9)), ("d", item_row(2))])
    write_topic(settings.changes_path, TOPIC, src.records, segment=3)
    before = _segments(settings.changes_path)

    ingest(settings)
    silver = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    assert {(r["item_id"], r["qty"]) for r in silver} == {
        (k[0], row["qty"]) for k, row in src.state.items()
    }
    end = len(src.records)
    if hours == 0:
        assert _segments(settings.changes_path) == [str(end)]
    else:  # positive control: young segments stay
        assert _segments(settings.changes_path) == before

    # the source goes on: new changes land after the deleted ones, at their own offsets
    src.transaction([("c", item_row(7))])
    with ChangeLogWriter(settings.changes_path) as writer:
        writer.append(TOPIC, src.records[end:])
    report = ingest(settings)
    assert report.topics[0].landed == 1
    silver = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table()
    assert sorted(silver.column("item_id").to_pylist()) == [0, 1, 3, 4, 5, 7]


def test_capture_creates_kafka_topics_with_the_retention() -> None:
    created = []

    class Admin:
        def create_topics(self, topics: list, request_timeout: float) -> dict:
            created.extend(topics)

            class Done:
                def result(self) -> None:
                    return None

            return {t.topic: Done() for t in topics}

    sink = KafkaSink("127.0.0.1:1", retention_hours=36)
    sink._admin = Admin()  # type: ignore[assignment]
    sink._create("oltp.public.client")
    assert created[0].config == {"retention.ms": str(36 * 3_600_000)}
    assert created[0].num_partitions == 1


def test_segments_roll_by_size_and_by_age(tmp_path: Path) -> None:
    line = b'{"n": 0}'  # 9 bytes with its newline
    with ChangeLogWriter(tmp_path, segment_bytes=9 * 4, segment_seconds=3600) as writer:
        writer.append(TOPIC, [line] * 10)
    assert _segments(tmp_path) == ["0", "4", "8"]
    with ChangeLogWriter(tmp_path / "aged", segment_seconds=0.2) as writer:
        writer.append(TOPIC, [line] * 3)
        writer.sync()
        time.sleep(0.3)  # the open segment is older than segment_seconds: a new one
        writer.append(TOPIC, [line] * 2)
    assert _segments(tmp_path / "aged") == ["0", "3"]
    assert FileSource(tmp_path / "aged").end_offset(TOPIC) == 5


@pytest.mark.integration
def test_maintain_trims_only_landed_segments_while_capture_writes(tmp_path: Path) -> None:
    """Capture goes on writing (segments roll by size) while the lander lands and
    maintain trims: what has landed and is past the retention goes, nothing else."""
    settings = load_settings(
        data_dir=tmp_path,
        contracts_dir=write_item_contract(tmp_path / "contracts"),
        changes_retention_hours=1,
    )
    src = Source()
    src.snapshot([item_row(i) for i in range(20)])
    writer = ChangeLogWriter(settings.changes_path, segment_bytes=2_000)
    writer.append(TOPIC, src.records)
    writer.sync()
    ingest(settings)  # lands everything so far; young segments stay (1 h retention)
    landed = len(src.records)
    src.transaction([("u", item_row(i, qty=i + 5)) for i in range(0, 20, 2)])
    writer.append(TOPIC, src.records[landed:])  # not landed yet, in the open segment too
    writer.sync()
    assert len(_segments(settings.changes_path)) > 3
    _age(settings.changes_path, 2)  # every segment past the retention, unlanded ones too

    records = trim_change_log(settings, "run")

    assert [(r.layer, r.table_name, r.action) for r in records] == [("changes", TOPIC, "trim")]
    left = FileSource(settings.changes_path)
    first = int(_segments(settings.changes_path)[0])
    assert 0 < first <= landed  # landed segments went; the one holding the boundary stays
    assert records[0].version_after == first and records[0].files_after < records[0].files_before
    batches = list(left.read(TOPIC, landed, 1000))
    assert sum(b.count for b in batches) == len(src.records) - landed  # unlanded: all there

    # capture goes on in its open segment; the lander lands the rest, silver is the source
    src.transaction([("c", item_row(30))])
    writer.append(TOPIC, src.records[-1:])
    writer.close()
    ingest(settings)
    silver = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    assert {(r["item_id"], r["qty"]) for r in silver} == {
        (k[0], row["qty"]) for k, row in src.state.items()
    }
