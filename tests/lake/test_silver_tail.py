"""Merge-on-read silver: the tail applies give the state the copy-on-write merge gives,
for any batch split; the fold keeps it, whether it runs once, twice, or stops between its
two commits, also with an apply in between; the lander folds past its thresholds; and a
batch writes about the same bytes into a table ten times bigger (the merge does not).

Real delta-rs tables; the changes are written to bronze directly (not through the
lander's de-duplication), so stale re-deliveries reach silver too."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from bench.apply import SNAPSHOT_POS, _contract, _rows
from bench.microbatch import build
from lakehouse.cdc.decode import bronze_schema
from lakehouse.cdc.lander import FOLDER, FoldMode, ingest
from lakehouse.contracts import Contract, load_contracts
from lakehouse.lake import bronze, delta, silver
from lakehouse.lake.silver import UNAVAILABLE
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

pytestmark = pytest.mark.integration
COLUMNS = ["item_id", "name", "qty", "_commit_pos", "_event_pos", "_offset"]


class Stream:
    """Random changes of a few keys into a bronze table: inserts, updates (some with an
    unchanged-TOAST placeholder), deletes, re-inserts, and stale re-deliveries of an
    earlier change at a later offset (an older source position)."""

    def __init__(self, home: Path, seed: int) -> None:
        self.contract = _contract(home)
        self.schema = bronze_schema(self.contract).append(bronze.INGESTED_AT)
        self.uri = str(home / "bronze" / "item")
        self.rnd = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.live: set[int] = set()
        self.sent: list[tuple[int, str, int]] = []  # (key, op, position)
        self.offset = 0
        self.deletes = self.reinserts = self.stale = 0

    def batch(self, n: int) -> None:
        ids, ops, pos = [], [], []
        for _ in range(n):
            key = self.rnd.randrange(12)
            op = self.rnd.choice("ud") if key in self.live else "c"
            p = 2 * SNAPSHOT_POS + 8 * (len(self.sent) + len(ids) + 1)
            self.deletes += op == "d"
            self.reinserts += op == "c" and any(k == key for k, _, _ in self.sent)
            (self.live.discard if op == "d" else self.live.add)(key)
            ids.append(key)
            ops.append(op)
            pos.append(p)
        self.sent += zip(ids, ops, pos, strict=True)
        offsets = np.arange(self.offset, self.offset + n, dtype=np.int64)
        self.offset += n
        p = np.array(pos, dtype=np.int64)
        rows = pa.Table.from_batches(
            [_rows(self.schema, np.array(ids), np.array(ops), offsets, p, p, self.np)]
        )
        self.rows = rows if self.offset == n else pa.concat_tables([self.rows, rows])
        # keys in turn, not in source order: positions out of order across keys, as a
        # topic with several partitions delivers them
        turn = {k: self.rnd.random() for k in set(ids)}
        rows = rows.take(sorted(range(n), key=lambda i: (turn[ids[i]], i)))
        rows = rows.set_column(rows.schema.get_field_index("_offset"), "_offset", pa.array(
            offsets))  # fmt: skip
        live = self.rows.filter(pc.is_in(self.rows["item_id"], pa.array(sorted(self.live))))
        if self.rnd.random() < 0.5 and live.num_rows:  # re-deliveries, as they were sent
            # (of live keys: one of a deleted key would bring it back in the merge too,
            # while its delete is in the tail here; bronze de-duplicates them anyway)
            again = live.take(self.np.integers(0, live.num_rows, 3))
            self.stale += again.num_rows
            at = pa.array(np.arange(self.offset, self.offset + 3, dtype=np.int64))
            rows = pa.concat_tables([rows, again.set_column(again.schema.get_field_index(
                "_offset"), "_offset", at)])  # fmt: skip
            self.offset += 3
        delta.append(self.uri, rows, app_id="test", version=self.offset - 1, storage_options={})


def _state(table: pa.Table | None) -> list[dict]:
    assert table is not None
    return table.select(COLUMNS).sort_by("item_id").to_pylist()


def _base(uri: str) -> pa.Table:
    return DeltaTable(uri).to_pyarrow_table()


def _current(contract: Contract, uri: str) -> pa.Table | None:
    return silver.read_current(uri, contract.primary_key, {})


@pytest.mark.parametrize("seed", range(6))
def test_tail_applies_give_the_merges_state_for_any_batch_split(tmp_path: Path, seed: int) -> None:
    stream = Stream(tmp_path, seed)
    c = stream.contract
    ours, theirs = str(tmp_path / "silver" / "item"), str(tmp_path / "merged" / "item")
    rnd = random.Random(seed)
    in_tail = 0
    for _ in range(rnd.randint(4, 8)):
        stream.batch(rnd.randint(1, 25))
        silver.apply(c, stream.uri, ours, {})
        silver.apply_merge(c, stream.uri, theirs, {})
        assert _state(_current(c, ours)) == _state(_base(theirs))
        if rnd.random() < 0.3:
            silver.fold(c, ours, {})
            assert _state(_base(ours)) == _state(_base(theirs))
        in_tail = max(in_tail, silver.tail_rows(ours, {}))
    assert in_tail > 0  # the reader did merge a tail
    silver.fold(c, ours, {})
    assert silver.tail_rows(ours, {}) == 0
    assert _state(_base(ours)) == _state(_base(theirs))
    # the stream did produce deletes, re-inserts and stale re-deliveries
    assert stream.deletes and stream.reinserts and stream.stale


def test_a_placeholder_takes_the_value_before_it(tmp_path: Path) -> None:
    """An update whose TOASTed value did not change, in a later batch than the value it
    keeps: the reader and the fold take the value from the tail's earlier change."""
    c = _contract(tmp_path)
    schema = bronze_schema(c).append(bronze.INGESTED_AT)
    b, s = str(tmp_path / "bronze" / "item"), str(tmp_path / "silver" / "item")
    rnd = np.random.default_rng(0)

    def send(key: int, op: str, offset: int) -> None:
        p = np.array([2 * SNAPSHOT_POS + 8 * offset])
        rows = _rows(schema, np.array([key]), np.array([op]), np.array([offset]), p, p, rnd)
        rows = pa.Table.from_batches([rows])
        if op == "u":
            name = pa.array([UNAVAILABLE], rows.schema.field("name").type)
            rows = rows.set_column(rows.schema.get_field_index("name"), "name", name)
        delta.append(b, rows, app_id="t", version=offset, storage_options={})
        silver.apply(c, b, s, {})

    send(1, "c", 0)  # the base's first batch
    send(1, "c", 1)  # a re-insert with a new name: in the tail
    send(1, "u", 2)  # a placeholder: keeps the name of offset 1
    (row,) = _state(_current(c, s))
    assert row["name"] == "item 1"
    silver.fold(c, s, {})
    assert _state(_base(s)) == [row]


def _two_batches_in_the_tail(tmp_path: Path) -> tuple[Stream, str]:
    stream = Stream(tmp_path, 7)
    uri = str(tmp_path / "silver" / "item")
    for n in (20, 15, 15):
        stream.batch(n)
        silver.apply(stream.contract, stream.uri, uri, {})
    assert silver.tail_rows(uri, {}) > 0
    return stream, uri


def test_a_fold_stopped_between_its_commits_reads_the_same_and_folds_again(
    tmp_path: Path,
) -> None:
    stream, uri = _two_batches_in_the_tail(tmp_path)
    c = stream.contract
    before = _state(_current(c, uri))
    silver._fold_once(c, uri, {})  # the merge committed, the tail's removal did not
    assert silver.tail_rows(uri, {}) > 0
    assert _state(_current(c, uri)) == before
    assert _state(_base(uri)) == before  # the base alone holds it too now
    result = silver.fold(c, uri, {})
    assert result.folded > 0 and silver.tail_rows(uri, {}) == 0
    assert _state(_base(uri)) == before
    version = DeltaTable(uri).version()
    again = silver.fold(c, uri, {})  # nothing to fold: no commit
    assert again.folded == 0 and DeltaTable(uri).version() == version
    assert _state(_current(c, uri)) == before


def test_an_apply_between_the_folds_two_commits_stays_in_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, uri = _two_batches_in_the_tail(tmp_path)
    c = stream.contract
    merged = str(tmp_path / "merged" / "item")
    silver.apply_merge(c, stream.uri, merged, {})
    real = silver._drop_folded

    def lander_first(tail: str, upto: int, opts: dict[str, str]) -> int:
        stream.batch(10)  # the lander lands and applies a batch meanwhile
        silver.apply(c, stream.uri, uri, {})
        return real(tail, upto, opts)

    monkeypatch.setattr(silver, "_drop_folded", lander_first)
    silver.fold(c, uri, {})
    monkeypatch.setattr(silver, "_drop_folded", real)
    assert silver.tail_rows(uri, {}) > 0  # the new batch: not removed with the folded
    silver.apply_merge(c, stream.uri, merged, {})
    assert _state(_current(c, uri)) == _state(_base(merged))
    silver.fold(c, uri, {})
    assert _state(_base(uri)) == _state(_base(merged))


def _lake(tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"), **kw
    )


def test_the_lander_folds_or_compacts_past_its_thresholds_and_a_one_off_ingest_folds(
    tmp_path: Path,
) -> None:
    s = _lake(tmp_path, silver_fold_rows=30, silver_fold_ratio=0.0, silver_fold_files=4)
    src = Source()
    src.snapshot([item_row(i) for i in range(50)])
    uri = s.table_uri("silver", "item")
    c = load_contracts(s.contracts_dir)["item"]

    def round_of(n: int, *, fold: FoldMode = "due") -> None:
        for i in range(n):
            src.transaction([("u", item_row(i, qty=len(src.records)))])
        write_topic(s.changes_path, "oltp.public.item", src.records)
        ingest(s, fold=fold)
        rows = _current(c, uri)
        assert rows is not None
        got = {r["item_id"]: r["qty"] for r in rows.to_pylist()}
        assert got == {k[0]: r["qty"] for k, r in src.state.items()}

    round_of(0)  # the snapshot: straight into the empty base
    assert silver.tail_rows(uri, {}) == 0
    round_of(20)
    assert silver.tail_rows(uri, {}) == 20  # below the threshold: it waits
    for _ in range(3):  # small batches: the tail's fourth file makes it compact, not fold
        round_of(1)
    assert (
        silver.tail_rows(uri, {}) == 23 and len(DeltaTable(silver.tail_uri(uri)).file_uris()) == 1
    )
    round_of(12)
    assert silver.tail_rows(uri, {}) == 0  # 35 >= 30: folded
    round_of(5)
    assert silver.tail_rows(uri, {}) == 5
    round_of(30, fold="background")  # `ingest --follow`: read while it folds
    FOLDER.wait()
    assert silver.tail_rows(uri, {}) == 0 and FOLDER.done[-1].folded == 35
    round_of(5)
    round_of(5, fold="all")  # `lakehouse ingest`: silver is a plain table after it
    assert silver.tail_rows(uri, {}) == 0
    assert silver.tail_due(uri, {}, rows=1, ratio=0.0, files=1) is None


def _files_added(uri: str, after: int) -> int:
    log = Path(uri) / "_delta_log"
    return sum(
        json.loads(line)["add"]["size"]
        for path in log.glob("*.json")
        if int(path.stem) > after
        for line in path.read_text().splitlines()
        if '"add"' in line
    )


def _bytes_of_a_batch(tmp_path: Path, rows: int, merge: bool) -> int:
    home = tmp_path / f"{rows}-{merge}"
    c = build(home, rows)
    schema = bronze_schema(c).append(bronze.INGESTED_AT)
    b, s = str(home / "bronze" / "item"), str(home / "silver" / "item")
    k = np.arange(rows, rows + 200, dtype=np.int64)
    ids = np.random.default_rng(1).integers(0, rows, 200)  # updates across the table
    pos = 2 * SNAPSHOT_POS + 8 * k
    batch = _rows(schema, ids, np.full(200, "u"), k, pos, pos, np.random.default_rng(2))
    delta.append(b, pa.Table.from_batches([batch]), app_id="t", version=int(k[-1]),
                 storage_options={})  # fmt: skip
    versions = {s: DeltaTable(s).version(), silver.tail_uri(s): -1}
    (silver.apply_merge if merge else silver.apply)(c, b, s, {})
    return sum(_files_added(uri, v) for uri, v in versions.items() if Path(uri).exists())


def test_a_batch_writes_about_the_same_bytes_into_a_table_ten_times_bigger(
    tmp_path: Path,
) -> None:
    small, big = (_bytes_of_a_batch(tmp_path, n, merge=False) for n in (20_000, 200_000))
    assert 0 < big < 1.5 * small
    # the positive control: the copy-on-write merge rewrites the files the keys are in
    small, big = (_bytes_of_a_batch(tmp_path, n, merge=True) for n in (20_000, 200_000))
    assert big > 5 * small


def test_maintain_folds_a_silver_tail_first_and_keeps_the_tails_too(tmp_path: Path) -> None:
    """`lakehouse maintain` folds each silver table's tail before compacting it, records
    the fold, and maintains the tails' own tables (their files are in the lake too)."""
    from lakehouse.lake import maintenance

    stream = Stream(tmp_path, 7)
    settings = Settings(data_dir=tmp_path / "data", contracts_dir=tmp_path / "contracts")
    uri = settings.table_uri("silver", "item")
    for n in (20, 15, 15):
        stream.batch(n)
        silver.apply(stream.contract, stream.uri, uri, {})
    before = _state(_current(stream.contract, uri))
    assert silver.tail_rows(uri, {}) > 0
    policy = maintenance.Policy.from_settings(settings)
    records = maintenance.maintain_lake(settings, policy, "run-1")
    by_table = {(r.layer, r.table_name, r.action) for r in records}
    assert ("silver", "item", "fold") in by_table
    assert any(layer == "silver_tail" for layer, _, _ in by_table)  # the tails: kept too
    assert silver.tail_rows(uri, {}) == 0
    assert _state(_base(uri)) == before == _state(_current(stream.contract, uri))
    again = maintenance.maintain_lake(settings, policy, "run-2")
    assert not any(r.action == "fold" for r in again)  # nothing waits in the tail
