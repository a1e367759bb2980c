"""Trino over the lake on MinIO: the lander's tables registered and equal to what
delta-rs reads, schema changes seen without registering again, and no partial commit
ever visible to a reader."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake import delta
from lakehouse.lake.catalog import register_tables, trino_connection
from lakehouse.settings import Settings, load_settings
from lakehouse.supervisors.minio import MinioServer
from lakehouse.supervisors.trino import TrinoServer
from tests.support.ports import free_port

pytestmark = pytest.mark.stack

SMALL = GenerateParams(clients=60, products=20, days=90, snapshot_day=10)
# Trino's Delta Lake connector reads a Delta TIMESTAMP (with time zone) as
# timestamp(3) with time zone: microseconds are rounded (half up) to milliseconds. Every
# other type maps without loss.
MILLIS_TYPE = "timestamp(3) with time zone"
WRITER_TIMEOUT_S = 600.0  # for a writer thread racing the reads of Trino


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """MinIO and Trino on free ports under a temporary data directory, with the small
    change log landed; both stopped at the end with no process left."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("trino"),
        profile="stack",
        minio_port=free_port(),
        minio_console_port=free_port(),
        trino_port=free_port(),
    )
    servers: list[MinioServer | TrinoServer] = [MinioServer(settings), TrinoServer(settings)]
    pids: list[int] = []
    try:
        for server in servers:
            server.start()
            pid = server.pid()
            assert pid is not None
            pids.append(pid)
        generate(settings, SMALL)
        # the first half of every topic now, the rest while Trino reads (the last test)
        shutil.copytree(settings.changes_path, _full_log(settings))
        _cut_log(settings, 1 / 2)
        ingest(settings, source=FileSource(settings.changes_path))  # registers in Trino
        yield settings
    finally:
        for server in reversed(servers):
            server.stop()
    for server, pid in zip(servers, pids, strict=False):
        assert not server.running()
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing of its process group is left


def _full_log(settings: Settings) -> Path:
    return settings.root / "changes.full"


def _cut_log(settings: Settings, share: float) -> None:
    """The change log as if its writer were ``share`` of the way through every topic
    (the last line torn mid-way, as a writer leaves it)."""
    for full in _full_log(settings).glob("*/*.jsonl"):
        data = full.read_bytes()
        target = settings.changes_path / full.relative_to(_full_log(settings))
        target.write_bytes(data[: int(len(data) * share)])


def _query(settings: Settings, sql: str) -> list[list[Any]]:
    with trino_connection(settings) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())


def _normal(value: Any, millis: bool) -> str:
    """One engine-neutral text per value; ``millis`` rounds a timestamp to milliseconds
    as Trino does."""
    if isinstance(value, datetime):
        if millis:
            rounded = (value.microsecond + 500) // 1000
            value = value.replace(microsecond=0) + timedelta(milliseconds=rounded)
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def _row_hashes(rows: Iterable[Sequence[Any]], millis: Sequence[bool]) -> Counter[str]:
    return Counter(
        hashlib.sha256(
            "\x1f".join(_normal(v, m) for v, m in zip(row, millis, strict=True)).encode()
        ).hexdigest()
        for row in rows
    )


def _assert_silver_equal(stack: Settings) -> None:
    """Every silver table through Trino equals the table through delta-rs: same columns,
    same rows (hashes over all columns)."""
    catalog = stack.trino_catalog
    contracts = load_contracts(stack.contracts_dir)
    for layer in ("bronze", "silver"):  # the lander registered every table it wrote
        tables = {name for (name,) in _query(stack, f"SHOW TABLES FROM {catalog}.{layer}")}
        assert set(contracts) <= tables, layer
    for table in sorted(contracts):
        lake = DeltaTable(
            stack.table_uri("silver", table), storage_options=stack.lake_storage_options
        )
        arrow = lake.to_pyarrow_table()
        described = dict(
            (row[0], row[1]) for row in _query(stack, f"DESCRIBE {catalog}.silver.{table}")
        )
        assert list(described) == arrow.column_names, table
        millis = [described[c] == MILLIS_TYPE for c in arrow.column_names]
        assert millis == [
            pa.types.is_timestamp(f.type) and f.type.tz is not None for f in arrow.schema
        ], table
        columns = ", ".join(f'"{c}"' for c in arrow.column_names)
        through_trino = _query(stack, f"SELECT {columns} FROM {catalog}.silver.{table}")
        through_delta = [list(row.values()) for row in arrow.to_pylist()]
        assert arrow.num_rows > 0, table
        assert _row_hashes(through_trino, millis) == _row_hashes(through_delta, millis), table


def test_silver_in_trino_equals_silver_through_delta_rs(stack: Settings) -> None:
    _assert_silver_equal(stack)


def test_registration_is_idempotent_and_columns_added_later_show_up(stack: Settings) -> None:
    assert register_tables(stack).registered == []  # the lander registered everything
    uri = stack.table_uri("silver", "evolving")
    options = stack.lake_storage_options
    first = pa.table({"id": pa.array([1, 2], pa.int64()), "a": ["x", "y"]})
    delta.append(uri, first, app_id="test", version=0, storage_options=options)
    assert register_tables(stack).registered == ["silver.evolving"]
    assert register_tables(stack).registered == []

    # the lander's append adds a column the source gained (schema_mode="merge")
    later = pa.table({"id": pa.array([3], pa.int64()), "a": ["z"], "b": pa.array([7], pa.int64())})
    delta.append(uri, later, app_id="test", version=1, storage_options=options)
    rows = _query(stack, f"SELECT id, a, b FROM {stack.trino_catalog}.silver.evolving ORDER BY id")
    assert rows == [[1, "x", None], [2, "y", None], [3, "z", 7]]


def test_a_reader_never_sees_a_partial_commit(stack: Settings) -> None:
    """A writer commits batches (each spread over several files, so a commit is several
    objects) and rewrites earlier ones, while Trino reads in a loop: every read sees whole
    batches, in commit order, each rewritten all at once or not at all."""
    batches, parts, rows_per_part = 12, 4, 50
    uri = stack.table_uri("silver", "commit_probe")
    options = stack.lake_storage_options
    schema = pa.schema([("batch", pa.int64()), ("part", pa.int64()), ("round", pa.int64())])
    DeltaTable.create(uri, schema, partition_by=["part"], storage_options=options)
    register_tables(stack)
    sql = (
        "SELECT batch, count(*), count(DISTINCT part), min(round), max(round) "
        f"FROM {stack.trino_catalog}.silver.commit_probe GROUP BY batch ORDER BY batch"
    )
    assert _query(stack, sql) == []
    progress = threading.Condition()
    commits = 0  # commits done
    covered = 0  # commits done before the start of the last finished read
    errors: list[BaseException] = []

    def committed() -> None:
        """Count a commit, then let the reader start a read after it before the next
        one, so that reads run while the next commit writes."""
        nonlocal commits
        with progress:
            commits += 1
            if not progress.wait_for(lambda: covered >= commits, timeout=120):
                raise TimeoutError("the reader did not read after a commit")

    def write() -> None:
        nonlocal commits
        try:
            for batch in range(batches):
                n = parts * rows_per_part
                rows = pa.table(
                    {"batch": [batch] * n, "part": [i % parts for i in range(n)], "round": [0] * n},
                    schema,
                )
                # the lander's commit: the rows and the source position in one Delta commit
                delta.append(uri, rows, app_id="probe", version=batch, storage_options=options)
                committed()
                if batch % 3 == 2:  # a rewrite (remove + add files), as silver's merge does
                    DeltaTable(uri, storage_options=options).update(
                        updates={"round": "round + 1"}, predicate=f"batch <= {batch}"
                    )
                    committed()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            with progress:
                commits = -1  # done
                progress.notify_all()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    states: list[tuple[int, int]] = []
    deadline = time.monotonic() + WRITER_TIMEOUT_S
    while True:
        with progress:
            before = commits
        if before < 0:
            break
        assert time.monotonic() < deadline, f"the writer still runs after {WRITER_TIMEOUT_S:.0f} s"
        result = _query(stack, sql)
        assert [row[0] for row in result] == list(range(len(result))), result  # no gap
        for _, count, distinct_parts, low, high in result:
            assert (count, distinct_parts) == (parts * rows_per_part, parts), result
            assert low == high, result  # a rewrite is seen whole
        states.append((len(result), sum(row[3] for row in result)))
        with progress:
            covered = before
            progress.notify_all()
    writer.join(60)
    assert not writer.is_alive() and errors == []
    assert states == sorted(states), "a read went back in time"
    rewrites = batches // 3
    assert len(set(states)) >= batches + rewrites, "a commit was never seen"
    final = _query(stack, sql)
    assert len(final) == batches and {row[1] for row in final} == {parts * rows_per_part}


def test_readers_during_lander_commits_see_whole_merges(stack: Settings) -> None:
    """The lander lands the rest of the change log (bronze appends, silver merges) while
    Trino reads every silver table in a loop: no read ever sees a key twice (a merge's
    new files without the removal of the old ones), and at the end Trino and delta-rs
    agree."""
    catalog = stack.trino_catalog
    contracts = load_contracts(stack.contracts_dir)
    duplicates = " UNION ALL ".join(
        f"SELECT '{name}', (SELECT count(*) FROM (SELECT 1 FROM {catalog}.silver.{name} "
        f"GROUP BY {', '.join(c.primary_key)} HAVING count(*) > 1)), "
        f"(SELECT count(*) FROM {catalog}.silver.{name})"
        for name, c in sorted(contracts.items())
    )
    done = threading.Event()
    errors: list[BaseException] = []

    def land() -> None:
        try:
            for share in (3 / 4, 1):
                _cut_log(stack, share)
                ingest(stack, source=FileSource(stack.changes_path))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    lander = threading.Thread(target=land, daemon=True)
    lander.start()
    counts: set[tuple[int, ...]] = set()
    deadline = time.monotonic() + WRITER_TIMEOUT_S
    while not done.is_set():
        assert time.monotonic() < deadline, f"the lander still runs after {WRITER_TIMEOUT_S:.0f} s"
        rows = _query(stack, duplicates)
        assert [row[1] for row in rows] == [0] * len(contracts), rows
        counts.add(tuple(row[2] for row in rows))
    lander.join(60)
    assert not lander.is_alive() and errors == []
    assert len(counts) >= 2, "no read saw the lander's commits"
    _assert_silver_equal(stack)
