"""Table maintenance on real Delta tables: a table after many small commits is compacted,
checkpointed and vacuumed and reads the same rows; vacuum keeps what the retention
protects (time travel, a reader holding an older snapshot) and removes the rest; a
retention below the minimum is refused in one line; each run is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.exceptions import ConfigError
from lakehouse.lake import maintenance
from lakehouse.lake.quality_tables import LAYER, MAINTENANCE
from lakehouse.pipeline.maintain import maintain
from lakehouse.settings import Settings, load_settings

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return load_settings(data_dir=tmp_path, maintenance_min_retention_hours=0, **kw)


def _rows(uri: str, version: int | None = None) -> list[dict]:
    table = DeltaTable(uri, version=version).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def _small_merges(uri: str, n: int) -> None:
    """A 200-row table, then ``n`` merges of a few keys each: a file rewritten per merge."""
    write_deltalake(uri, pa.table({"id": list(range(200)), "v": [0] * 200}))
    for i in range(n):
        keys = [(i * 7 + j) % 260 for j in range(3)]  # updates and new keys
        source = pa.table({"id": keys, "v": [i + 1] * 3})
        (
            DeltaTable(uri)
            .merge(source, "t.id = s.id", source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        write_deltalake(uri, pa.table({"id": [1000 + i], "v": [i]}), mode="append")


def _data_files(uri: str) -> set[str]:
    return {p.name for p in Path(uri).glob("*.parquet")}


def test_small_commits_are_compacted_checkpointed_and_vacuumed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    uri = settings.table_uri("silver", "orders")
    _small_merges(uri, 25)
    before = _rows(uri)
    files_before = len(DeltaTable(uri).file_uris())
    on_disk_before = len(_data_files(uri))

    dry = maintain(settings, dry_run=True, retention_hours=0)
    assert [r.action for r in dry.actions if r.table_name == "orders"] == [
        "compact",
        "vacuum",
        "checkpoint",
    ]
    assert DeltaTable(uri).version() == dry.actions[0].version_before  # nothing changed
    assert DeltaTable.is_deltatable(settings.table_uri(LAYER, MAINTENANCE)) is False

    report = maintain(settings, retention_hours=0)

    done = {r.action: r for r in report.records if r.table_name == "orders"}
    assert list(done) == ["compact", "vacuum", "checkpoint"]
    assert _rows(uri) == before
    assert len(DeltaTable(uri).file_uris()) == 1 < files_before
    assert len(_data_files(uri)) == 1 < on_disk_before  # the old versions' files are gone
    assert done["vacuum"].disk_bytes_after < done["compact"].disk_bytes_before
    assert DeltaTable(uri).version() == done["checkpoint"].version_after
    assert (Path(uri) / "_delta_log" / "_last_checkpoint").exists()
    # the log before the checkpoint went too (the retention is the log's as well)
    assert not (Path(uri) / "_delta_log" / f"{0:020d}.json").exists()

    history = DeltaTable(settings.table_uri(LAYER, MAINTENANCE)).to_pyarrow_table().to_pylist()
    mine = [r for r in history if r["run_id"] == report.run_id]
    assert len(mine) == len(report.records)
    assert {(r["table_name"], r["action"]) for r in mine} >= {
        ("orders", "compact"),
        ("orders", "checkpoint"),
        ("orders", "vacuum"),
        ("table_maintenance", "none"),  # the history table itself, created by this run
    }

    # a second run finds nothing due on the maintained table
    again = maintain(settings, retention_hours=0)
    assert [r.action for r in again.records if r.table_name == "orders"] == ["none"]


def _age_removals(uri: str, version: int, hours: float) -> None:
    """Make the files that ``version`` removed look removed ``hours`` ago (delta-rs
    vacuums by the remove actions' deletionTimestamp): the clock moved on."""
    path = Path(uri) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in path.read_text().splitlines()]
    for action in actions:
        if "remove" in action:
            action["remove"]["deletionTimestamp"] -= int(hours * 3_600_000)
    path.write_text("".join(json.dumps(a) + "\n" for a in actions))


def test_vacuum_keeps_what_the_retention_protects(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    uri = settings.table_uri("silver", "stock")
    write_deltalake(uri, pa.table({"id": [1, 2], "v": [0, 0]}))  # version 0
    v0_files = _data_files(uri)
    write_deltalake(uri, pa.table({"id": [1, 2], "v": [1, 1]}), mode="overwrite")  # 1
    v1_files = _data_files(uri) - v0_files
    _age_removals(uri, 1, hours=3)  # version 0 stopped being current 3 hours ago
    reader = DeltaTable(uri)  # a query that started on version 1, still running
    write_deltalake(uri, pa.table({"id": [1, 2], "v": [2, 2]}), mode="overwrite")  # 2

    policy = maintenance.Policy.from_settings(settings, retention_hours=2)
    target = next(t for t in maintenance.targets(settings) if t.name == "stock")
    records = maintenance.maintain_table(target, policy, "run", steps=[maintenance.VACUUM])

    assert [r.action for r in records] == ["vacuum"]
    assert records[0].reason.startswith("1 files (")
    assert records[0].reason.endswith("unused for more than 2 h")
    on_disk = _data_files(uri)
    assert not v0_files & on_disk  # past the retention: removed
    assert v1_files <= on_disk  # within it: kept
    assert [r["v"] for r in _rows(uri, version=1)] == [1, 1]  # time travel within it
    assert [r["v"] for r in reader.to_pyarrow_table().to_pylist()] == [1, 1]
    with pytest.raises(OSError):  # positive control: version 0 is gone
        DeltaTable(uri, version=0).to_pyarrow_table()


def test_a_retention_below_the_minimum_is_refused_in_one_line(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, maintenance_min_retention_hours=6)
    with pytest.raises(ConfigError, match="below the minimum of 6 h"):
        maintenance.Policy.from_settings(settings, retention_hours=5)
    assert maintenance.Policy.from_settings(settings, retention_hours=6).retention_hours == 6

    tmp_path.mkdir(exist_ok=True)
    run = subprocess.run(
        [LAKEHOUSE, "maintain", "--data-dir", str(tmp_path), "--retention-hours", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "LAKEHOUSE_MAINTENANCE_MIN_RETENTION_HOURS": "1"},
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("error: a retention of 0 h is below the minimum of 1 h")
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_log_is_cleaned_after_delta_rs_checkpointed_by_itself(tmp_path: Path) -> None:
    """delta-rs writes a checkpoint every 100 commits (at version 99, ...) but never
    cleans the log: the entries before it, past the retention, are a reason of their
    own."""
    settings = _settings(tmp_path, maintenance_checkpoint_versions=20)
    uri = settings.table_uri("bronze", "events")
    for i in range(102):
        write_deltalake(uri, pa.table({"id": [i]}), mode="append")
    log = Path(uri) / "_delta_log"
    assert (log / f"{99:020d}.checkpoint.parquet").exists()
    policy = maintenance.Policy.from_settings(settings, retention_hours=0)
    target = next(t for t in maintenance.targets(settings) if t.name == "events")

    (record,) = maintenance.maintain_table(target, policy, "run", steps=[maintenance.CHECKPOINT])

    assert record.reason == "99 log entries before the last checkpoint, older than 0 h"
    assert len(list(log.glob("*.json"))) < 5
    assert record.disk_bytes_after < record.disk_bytes_before
    assert [r["id"] for r in _rows(uri)] == list(range(102))


def test_the_command_shows_what_it_would_do_and_what_it_did(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    uri = settings.table_uri("bronze", "orders")
    for i in range(10):
        write_deltalake(uri, pa.table({"id": [i]}), mode="append")
    env = {**os.environ, "LAKEHOUSE_MAINTENANCE_MIN_RETENTION_HOURS": "0", "COLUMNS": "200"}
    command = [LAKEHOUSE, "maintain", "--data-dir", str(tmp_path), "--retention-hours", "0"]

    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would do (dry run)" in dry.stdout
    assert "bronze.orders" in dry.stdout and "10 of 10 files under 16 MB" in dry.stdout
    assert len(DeltaTable(uri).file_uris()) == 10  # nothing done

    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "compact" in done.stdout and "10 → 1" in done.stdout
    assert "recorded in quality.table_maintenance" in done.stdout
    assert len(DeltaTable(uri).file_uris()) == 1
