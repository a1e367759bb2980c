"""MinIO as the lake's object store: start and stop as a local process, and safe Delta
commits through conditional put (``aws_conditional_put=etag``) with concurrent writers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from pyarrow import fs

from lakehouse.lake.catalog import lake_filesystem
from lakehouse.settings import Settings, load_settings
from lakehouse.supervisors.minio import MinioServer
from tests.support.ports import free_port

pytestmark = pytest.mark.stack

WRITERS = 3
COMMITS = 8
WRITERS_TIMEOUT_S = 300.0
ROWS = 5
SCHEMA = pa.schema([("writer", pa.string()), ("commit", pa.int64()), ("n", pa.int64())])


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The stack profile on a MinIO of its own (free ports), stopped at the end with no
    process left."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("object_store"),
        profile="stack",
        minio_port=free_port(),
        minio_console_port=free_port(),
    )
    server = MinioServer(settings)
    assert server.start() is True
    pid = server.pid()
    try:
        yield settings
    finally:
        assert server.stop() is True
    assert pid is not None and not server.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of its process group is left


def _rows(writer: str, commit: int) -> pa.Table:
    return pa.table(
        {"writer": [writer] * ROWS, "commit": [commit] * ROWS, "n": list(range(ROWS))}, SCHEMA
    )


def test_start_is_idempotent_and_the_bucket_exists(settings: Settings) -> None:
    server = MinioServer(settings)
    pid = server.pid()
    assert server.healthy() and server.start() is False and server.pid() == pid
    filesystem, root = lake_filesystem(settings)
    bucket = root.split("/")[0]
    assert bucket == settings.s3_bucket
    assert filesystem.get_file_info(bucket).type == fs.FileType.Directory


def test_concurrent_appends_all_commit_with_distinct_versions(settings: Settings) -> None:
    uri = settings.table_uri("bronze", "concurrent_appends")
    options = settings.lake_storage_options
    assert options["aws_conditional_put"] == "etag"
    write_deltalake(uri, SCHEMA.empty_table(), storage_options=options)
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(writer: str) -> None:
        try:
            start.wait(timeout=60)
            for commit in range(COMMITS):
                write_deltalake(uri, _rows(writer, commit), mode="append", storage_options=options)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"w{i}",), daemon=True) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WRITERS_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), (
        f"writers still run after {WRITERS_TIMEOUT_S:.0f} s"
    )
    assert errors == []

    table = DeltaTable(uri, storage_options=options)
    # one version per commit, none overwritten: the creation plus every append
    assert table.version() == WRITERS * COMMITS
    filesystem, root = lake_filesystem(settings)
    log = filesystem.get_file_info(fs.FileSelector(f"{root}/bronze/concurrent_appends/_delta_log"))
    commits = sorted(info.base_name for info in log if info.base_name.endswith(".json"))
    assert commits == [f"{v:020d}.json" for v in range(WRITERS * COMMITS + 1)]
    # every row of every writer's every commit, exactly once
    rows = table.to_pyarrow_table()
    assert rows.num_rows == WRITERS * COMMITS * ROWS
    per_commit = rows.group_by(["writer", "commit"]).aggregate([([], "count_all")])
    assert per_commit.num_rows == WRITERS * COMMITS
    assert set(per_commit.column("count_all").to_pylist()) == {ROWS}


def test_a_stale_writer_gets_a_conflict_instead_of_overwriting(settings: Settings) -> None:
    uri = settings.table_uri("silver", "stale_writer")
    options = settings.lake_storage_options
    write_deltalake(uri, pa.concat_tables([_rows("a", 0), _rows("b", 0)]), storage_options=options)
    stale = DeltaTable(uri, storage_options=options)  # both read version 0
    fresh = DeltaTable(uri, storage_options=options)

    fresh.delete("writer = 'a'")  # version 1 removes the files the stale writer read
    with pytest.raises(CommitFailedError, match="concurrent transaction"):
        stale.update(updates={"n": "n + 100"}, predicate="writer = 'a' OR writer = 'b'")

    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1  # the stale update left no commit behind
    rows = table.to_pyarrow_table()
    assert rows.column("writer").to_pylist() == ["b"] * ROWS
    assert sorted(rows.column("n").to_pylist()) == list(range(ROWS))
