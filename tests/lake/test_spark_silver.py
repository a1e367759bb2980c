"""Silver applied by Spark equals silver applied by delta-rs, from the same change log.

The log: the generator's shop (snapshot, inserts, updates, deletes, redeliveries) plus a
table of the test's own with unchanged-TOAST placeholders and a column added in the
source. Each engine lands and applies it in a data directory of its own, in rounds (the
log as it grows); every silver table must then have the same schema and the same rows.
Spark's result is also checked against independent truths (the generator's ground
truth, the test's model of the item table). One Spark session serves the whole module.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pydantic import SecretStr

from lakehouse.cdc.lander import Engine, ingest
from lakehouse.contracts import load_source_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake.silver import UNAVAILABLE
from lakehouse.lake.spark_session import spark_session
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic
from tests.support.truth import assert_silver_equals_truth

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("spark")]

SMALL = GenerateParams(clients=60, products=20, days=90, snapshot_day=10)
ITEM_TOPIC = "oltp.public.item"
ITEM_TRANSACTIONS = 120
TIER_FROM = 60  # the item transaction from which the source has the added column `tier`


@dataclass(frozen=True)
class ChangeLog:
    """A data directory holding the whole change log and the generator's truth."""

    home: Path
    item_starts: list[int]  # index of each item transaction's first record
    item_truth: dict[tuple, tuple]  # (item_id, shop) -> (name, qty, price, tier)


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, pii_key=SecretStr("spark-test-key-0123456789abcdef0123"))


def _item_workload() -> tuple[list[bytes], list[int], dict[tuple, tuple]]:
    """Item changes: the records, where each transaction starts, the true final state."""
    rnd = random.Random(7)
    src = Source()
    src.snapshot([item_row(i, shop) for i in range(30) for shop in ("a", "b")])
    truth = {k: (r["name"], r["qty"], r["price"], None) for k, r in src.state.items()}
    starts = []
    for n in range(ITEM_TRANSACTIONS):
        starts.append(len(src.records))
        changes, touched = [], set()
        for _ in range(rnd.randint(1, 3)):
            key = (rnd.randrange(40), rnd.choice("ab"))
            if key in touched:
                continue
            touched.add(key)
            op = rnd.choice("uud") if key in truth else "c"
            row = item_row(*key, qty=rnd.randint(1, 99), price=f"{rnd.randint(0, 9999) / 100:.2f}")
            row["name"] = f"name {n}"
            if n >= TIER_FROM:
                row["tier"] = rnd.choice(["gold", "silver"])
            if op == "u" and rnd.random() < 0.3:  # a TOASTed name left unchanged: not logged
                row["name"] = UNAVAILABLE
            changes.append((op, row))
            if op == "d":
                truth.pop(key)
            else:
                name = truth[key][0] if row["name"] == UNAVAILABLE else row["name"]
                truth[key] = (name, row["qty"], row["price"], row.get("tier"))
        src.transaction(changes)
    return src.records, starts, truth


@pytest.fixture(scope="module")
def change_log(tmp_path_factory: pytest.TempPathFactory) -> ChangeLog:
    home = tmp_path_factory.mktemp("log")
    settings = _settings(home)
    generate(settings, SMALL)
    records, starts, truth = _item_workload()
    write_topic(settings.changes_path, ITEM_TOPIC, records)
    write_item_contract(settings.captured_contracts_dir)
    return ChangeLog(home, starts, truth)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    session = spark_session(_settings(tmp_path_factory.mktemp("spark")))
    yield session
    session.stop()


def _lake(log: ChangeLog, to: Path) -> Settings:
    """A data directory of its own: the log's contracts and secrets, no change yet."""
    shutil.copytree(log.home, to, ignore=shutil.ignore_patterns("changes"))
    return _settings(to)


def _grow(settings: Settings, log: ChangeLog, share: float, item_transactions: int) -> None:
    """The change log as it was when ``share`` of each shop topic and the first
    ``item_transactions`` item transactions were written."""
    for topic in sorted(p for p in (log.home / "changes").iterdir() if p.is_dir()):
        lines = [
            line for f in sorted(topic.glob("*.jsonl")) for line in f.read_bytes().splitlines()
        ]
        if topic.name == ITEM_TOPIC:
            cut = ([*log.item_starts, len(lines)])[item_transactions]
        else:
            cut = int(len(lines) * share)
        shutil.rmtree(settings.changes_path / topic.name, ignore_errors=True)
        write_topic(settings.changes_path, topic.name, lines[:cut], segment=len(lines))


def _silver(settings: Settings) -> dict[str, tuple[pa.Schema, pa.Table]]:
    tables = {}
    for name, contract in load_source_contracts(settings).items():
        table = DeltaTable(settings.table_uri("silver", name)).to_pyarrow_table()
        key = [(k, "ascending") for k in contract.primary_key]
        tables[name] = (table.schema, table.sort_by(key).combine_chunks())
    return tables


def _assert_same_silver(left: Settings, right: Settings) -> None:
    """Same tables, same schemas (names, types, order), same rows and values."""
    a, b = _silver(left), _silver(right)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], f"silver {name}: schemas differ"
        assert a[name][1].num_rows == b[name][1].num_rows, f"silver {name}: row counts differ"
        assert a[name][1].equals(b[name][1]), f"silver {name}: rows differ"


def _assert_item_truth(settings: Settings, truth: dict[tuple, tuple]) -> None:
    rows = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    got = {
        (r["item_id"], r["shop"]): (r["name"], r["qty"], f"{r['price']:.2f}", r["tier"])
        for r in rows
    }
    assert got == truth


def test_spark_and_delta_rs_give_the_same_silver(
    change_log: ChangeLog, spark: object, tmp_path: Path
) -> None:
    """Round one is a first load (half the log; the item table before its new column),
    round two merges the rest: the column added, placeholders resolved against silver."""
    by_delta_rs = _lake(change_log, tmp_path / "delta-rs")
    by_spark = _lake(change_log, tmp_path / "spark")
    for share, item_transactions in ((0.5, TIER_FROM - 15), (1.0, ITEM_TRANSACTIONS)):
        _grow(by_delta_rs, change_log, share, item_transactions)
        _grow(by_spark, change_log, share, item_transactions)
        ingest(by_delta_rs)
        report = ingest(by_spark, engine="spark")
        assert report.rejected == 0
        assert sum(r.changes for r in report.applied) > 0
        _assert_same_silver(by_delta_rs, by_spark)

    assert_silver_equals_truth(by_spark)
    _assert_item_truth(by_spark, change_log.item_truth)


def test_the_engines_take_turns_on_the_same_tables(
    change_log: ChangeLog, spark: object, tmp_path: Path
) -> None:
    """delta-rs, then Spark over delta-rs's tables, then delta-rs over Spark's: the
    same silver as one delta-rs apply of the whole log."""
    once = _lake(change_log, tmp_path / "once")
    _grow(once, change_log, 1.0, ITEM_TRANSACTIONS)
    ingest(once)
    turns = _lake(change_log, tmp_path / "turns")
    rounds: list[tuple[float, int, Engine]] = [
        (1 / 3, 30, "delta-rs"),
        (2 / 3, 90, "spark"),
        (1.0, ITEM_TRANSACTIONS, "delta-rs"),
    ]
    for share, item_transactions, engine in rounds:
        _grow(turns, change_log, share, item_transactions)
        ingest(turns, engine=engine)

    _assert_same_silver(once, turns)
    _assert_item_truth(turns, change_log.item_truth)
