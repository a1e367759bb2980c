"""Property-based tests of the apply: whatever Debezium's delivery does within its
guarantees, silver ends equal to the source's true state and bronze holds each change once.

The truth is the test's own model of the source (tests/support/debezium.py), not the
lander's output.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.cdc.lander import ingest
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

TOPIC = "oltp.public.item"
KEYS = [(i, shop) for i in range(4) for shop in ("a", "b")]

pytestmark = pytest.mark.integration


@st.composite
def workloads(draw: st.DrawFn) -> Source:
    """A snapshot then random transactions of inserts, updates and deletes."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    src = Source()
    src.snapshot([item_row(i, shop) for i, shop in KEYS if rnd.random() < 0.5])
    for _ in range(draw(st.integers(1, 25))):
        changes, touched = [], set()
        for _ in range(rnd.randint(1, 3)):
            i, shop = rnd.choice(KEYS)
            if (i, shop) in touched:
                continue
            touched.add((i, shop))
            exists = (i, shop) in src.state
            op = rnd.choice(["u", "u", "d"]) if exists else "c"
            row = item_row(
                i, shop, qty=rnd.randint(1, 99), price=f"{rnd.randint(0, 9999) / 100:.2f}"
            )
            changes.append((op, row))
            # keep the model's state in step for the next draw in this transaction
        src.transaction(changes)
    return src


def _silver_state(s: Settings) -> dict[tuple, tuple]:
    table = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table()
    return {
        (r["item_id"], r["shop"]): (r["qty"], f"{r['price']:.2f}", r["name"])
        for r in table.to_pylist()
    }


def _true_state(src: Source) -> dict[tuple, tuple]:
    return {k: (r["qty"], r["price"], r["name"]) for k, r in src.state.items()}


def _distinct_changes(src: Source) -> int:
    return sum(1 for r in src.records if not r.endswith(b'"value":null}'))


def _bronze_rows(s: Settings) -> int:
    return DeltaTable(s.table_uri("bronze", "item")).to_pyarrow_table().num_rows


def _settings(tmp: Path, batch: int) -> Settings:
    return Settings(
        data_dir=tmp,
        contracts_dir=write_item_contract(tmp / "contracts"),
        ingest_batch_events=batch,
    )


def _redelivered(records: list[bytes], rnd: random.Random, restarts: int) -> list[bytes]:
    """Connector restarts: each re-sends a tail of what it had already sent."""
    out = list(records)
    for _ in range(restarts):
        at = rnd.randint(0, len(out))
        back = rnd.randint(0, at)
        out[at:at] = out[back:at]
    return out


def _interleaved(records: list[bytes], rnd: random.Random) -> list[bytes]:
    """Another order Debezium may deliver on a multi-partition topic: each key's records
    (a delete and its tombstone included) keep their order; keys interleave freely."""
    import orjson

    per_key: dict[bytes, list[bytes]] = {}
    for r in records:
        per_key.setdefault(orjson.dumps(orjson.loads(r)["key"]), []).append(r)
    queues = list(per_key.values())
    out = []
    while queues:
        q = rnd.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


common = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@common
@given(
    src=workloads(),
    seed=st.integers(0, 2**16),
    restarts=st.integers(0, 4),
    batch=st.integers(1, 40),
)
def test_duplicates_and_batch_splits_give_the_true_state(
    tmp_path_factory: pytest.TempPathFactory, src: Source, seed: int, restarts: int, batch: int
) -> None:
    tmp = tmp_path_factory.mktemp("dup")
    s = _settings(tmp, batch)
    write_topic(s.changes_path, TOPIC, _redelivered(src.records, random.Random(seed), restarts))
    report = ingest(s)
    assert report.rejected == 0
    assert _silver_state(s) == _true_state(src)
    assert _bronze_rows(s) == _distinct_changes(src)


@common
@given(src=workloads(), seed=st.integers(0, 2**16))
def test_any_per_key_interleaving_gives_the_true_state(
    tmp_path_factory: pytest.TempPathFactory, src: Source, seed: int
) -> None:
    tmp = tmp_path_factory.mktemp("mix")
    s = _settings(tmp, 7)
    write_topic(s.changes_path, TOPIC, _interleaved(src.records, random.Random(seed)))
    ingest(s)
    assert _silver_state(s) == _true_state(src)


@common
@given(src=workloads(), data=st.data())
def test_crash_and_replay_at_any_point_gives_the_true_state(
    tmp_path_factory: pytest.TempPathFactory, src: Source, data: st.DataObject
) -> None:
    """The lander dies after any prefix of the stream, between bronze and silver or not,
    and restarts over the whole stream (possibly more than once)."""
    tmp = tmp_path_factory.mktemp("crash")
    s = _settings(tmp, data.draw(st.integers(1, 30)))
    records = src.records
    for _ in range(data.draw(st.integers(1, 3))):
        cut = data.draw(st.integers(0, len(records)))
        write_topic(s.changes_path, TOPIC, records[:cut], segment=len(records) + 1)
        ingest(s, apply=data.draw(st.booleans()))
    write_topic(s.changes_path, TOPIC, records, segment=len(records) + 1)
    ingest(s)
    ingest(s)  # a replay of everything is a no-op
    assert _silver_state(s) == _true_state(src)
    assert _bronze_rows(s) == _distinct_changes(src)


def test_silver_keeps_applied_position_and_skips_replays(tmp_path: Path) -> None:
    s = _settings(tmp_path, 3)
    src = Source()
    src.snapshot([item_row(1), item_row(2)])
    src.transaction([("u", item_row(1, qty=7)), ("d", item_row(2))])
    write_topic(s.changes_path, TOPIC, src.records)
    first = ingest(s)
    assert [a.changes for a in first.applied] == [4]
    second = ingest(s)
    assert second.events == 0 and [a.changes for a in second.applied] == [0]
    silver = DeltaTable(s.table_uri("silver", "item"))
    assert silver.transaction_version("bronze") == 3
    assert pc.max(silver.to_pyarrow_table().column("_offset")).as_py() == 2
