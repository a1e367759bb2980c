"""The demo business: deterministic, idempotent, Debezium-shaped, and carrying signal.

One small business is generated per module; the replay test rebuilds every table from
the events with plain Python (independently of the lander) and compares it with the
ground truth the generator wrote.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from lakehouse.exceptions import LakehouseError
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import Settings, load_settings

SMALL = GenerateParams(clients=150, products=50, days=400, snapshot_day=20)
PG_SOURCE_FIELDS = {
    "version",
    "connector",
    "name",
    "ts_ms",
    "snapshot",
    "db",
    "sequence",
    "ts_us",
    "ts_ns",
    "schema",
    "table",
    "txId",
    "lsn",
    "xmin",
    "origin",
    "origin_lsn",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("shop"))
    generate(settings, SMALL)
    return settings


def _records(settings: Settings, table: str) -> list[dict[str, Any]]:
    directory = settings.changes_path / f"oltp.public.{table}"
    lines: list[bytes] = []
    for path in sorted(directory.glob("*.jsonl")):
        lines.extend(path.read_bytes().splitlines())
    return [orjson.loads(line) for line in lines]


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(directory).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _truth(settings: Settings, table: str) -> list[dict[str, Any]]:
    return pq.read_table(settings.ground_truth_path / f"{table}.parquet").to_pylist()


def test_same_seed_same_bytes_other_seed_other_business(tmp_path: Path, shop: Settings) -> None:
    again = load_settings(data_dir=tmp_path / "again")
    generate(again, SMALL)
    assert _digest(again.changes_path) == _digest(shop.changes_path)
    other = load_settings(data_dir=tmp_path / "other")
    generate(other, GenerateParams(seed=7, clients=150, products=50, days=400, snapshot_day=20))
    assert _digest(other.changes_path) != _digest(shop.changes_path)


def test_second_run_is_skipped_and_other_parameters_need_force(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    params = GenerateParams(clients=20, products=10, days=20, snapshot_day=5)
    first = generate(settings, params)
    assert not first.skipped and first.total_events > 0
    second = generate(settings, params)
    assert second.skipped and second.total_events == first.total_events
    bigger = GenerateParams(clients=30, products=10, days=20, snapshot_day=5)
    with pytest.raises(LakehouseError, match=r"clients 20 -> 30.*--force"):
        generate(settings, bigger)
    (settings.root / "lake").mkdir()
    forced = generate(settings, bigger, force=True)
    assert not forced.skipped and forced.total_events != first.total_events
    assert not (settings.root / "lake").exists()  # the lake built from the old events goes


def test_records_have_the_postgresql_connector_envelope(shop: Settings) -> None:
    records = _records(shop, "orders")
    snapshot = [r for r in records if r["value"]["op"] == "r"]
    streamed = [r for r in records if r["value"]["op"] != "r"]
    assert snapshot and streamed
    for r in records[:2000]:
        value = r["value"]
        assert list(value) == [
            "before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"
        ]  # fmt: skip
        assert set(value["source"]) == PG_SOURCE_FIELDS
        assert value["source"]["connector"] == "postgresql"
        assert value["source"]["table"] == "orders" and value["source"]["schema"] == "public"
        assert set(r["key"]) == {"order_id"}
        assert value["ts_ms"] >= value["source"]["ts_ms"]
        sequence = json.loads(value["source"]["sequence"])
        assert sequence[1] == str(value["source"]["lsn"])
    # snapshot rows: one LSN, no previous commit, marked until streaming starts
    assert {json.loads(r["value"]["source"]["sequence"])[0] for r in snapshot} == {None}
    assert {r["value"]["source"]["snapshot"] for r in snapshot} <= {"first", "true", "last"}
    assert {r["value"]["source"]["snapshot"] for r in streamed} == {"false"}
    # timestamps as time.precision.mode=adaptive writes them
    after = streamed[0]["value"]["after"]
    assert isinstance(after["ordered_at"], int)
    assert datetime.fromisoformat(after["updated_at"]).tzinfo == UTC


def test_deletes_are_followed_by_tombstones(shop: Settings) -> None:
    records = _records(shop, "order_item")
    deletes = 0
    for i, r in enumerate(records):
        if r["value"] is not None and r["value"]["op"] == "d":
            deletes += 1
            assert r["value"]["after"] is None and r["value"]["before"] is not None
            assert records[i + 1]["value"] is None
            assert records[i + 1]["key"] == r["key"]
    assert deletes > 50


def test_transactions_span_tables_and_interleave_in_the_wal(shop: Settings) -> None:
    tables_of_tx: dict[int, set[str]] = defaultdict(set)
    lsns: list[tuple[str, int]] = []  # (commit position, lsn) in stream order
    for table in ("orders", "order_item", "sale", "stock"):
        for r in _records(shop, table):
            if r["value"] is None or r["value"]["op"] == "r":
                continue
            source = r["value"]["source"]
            tables_of_tx[source["txId"]].add(table)
            if table == "orders":
                lsns.append((json.loads(source["sequence"])[0], source["lsn"]))
    assert any({"orders", "sale", "stock"} <= t for t in tables_of_tx.values())
    assert any({"orders", "order_item"} <= t for t in tables_of_tx.values())
    # concurrent transactions: a later commit holds changes with smaller LSNs
    out_of_order = sum(1 for a, b in itertools.pairwise(lsns) if b[1] < a[1])
    assert out_of_order > 10


def test_replaying_the_events_in_commit_order_gives_the_ground_truth(shop: Settings) -> None:
    """Independent of the lander: a dict per table, events sorted by position."""
    manifest = json.loads((shop.changes_path / "manifest.json").read_text())
    assert manifest["duplicates"] > 0
    for table, key_cols in (("client", ["client_id"]), ("stock", ["product_id", "warehouse_id"])):
        events = []
        for offset, r in enumerate(_records(shop, table)):
            if r["value"] is None:
                continue
            source = r["value"]["source"]
            head = json.loads(source["sequence"])[0]
            commit = int(head) if head is not None else source["lsn"]
            events.append((commit, source["lsn"], offset, r))
        state: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _, _, _, r in sorted(events, key=lambda e: e[:3]):
            key = tuple(r["key"][k] for k in key_cols)
            if r["value"]["op"] == "d":
                state.pop(key, None)
            else:
                state[key] = r["value"]["after"]
        truth = _truth(shop, table)
        assert len(state) == len(truth)
        for row in truth:
            replayed = state[tuple(row[k] for k in key_cols)]
            assert datetime.fromisoformat(replayed["updated_at"]) == row["updated_at"]
            for col, value in row.items():
                if isinstance(value, int | str | bool):
                    assert replayed[col] == value, (table, col)


def test_totals_match_the_final_rows(shop: Settings) -> None:
    totals = json.loads((shop.ground_truth_path / "totals.json").read_text())
    items = _truth(shop, "order_item")
    sales = _truth(shop, "sale")
    assert totals["rows"]["order_item"] == len(items)
    assert totals["order_item"]["quantity"] == sum(r["quantity"] for r in items)
    gross = sum(r["quantity"] * r["unit_price"] for r in items)
    assert Decimal(totals["order_item"]["gross_amount"]) == gross
    assert Decimal(totals["sale"]["net_amount"]) == sum(r["net_amount"] for r in sales)
    for r in sales:
        assert r["net_amount"] == r["gross_amount"] - r["discount_amount"]


def test_versions_count_the_snapshot_and_every_change(shop: Settings) -> None:
    versions = {
        r["id"]: r["versions"]
        for r in pq.read_table(shop.ground_truth_path / "versions.parquet").to_pylist()
        if r["table"] == "client"
    }
    seen: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for r in _records(shop, "client"):
        if r["value"] is not None and r["value"]["op"] in "rcu":
            source = r["value"]["source"]
            seen[r["key"]["client_id"]].add((source["sequence"], source["lsn"]))
    assert versions == {cid: len(s) for cid, s in seen.items()}
    assert max(versions.values()) > 1


def test_the_business_carries_learnable_signal(shop: Settings) -> None:
    orders = _truth(shop, "orders")
    items = _truth(shop, "order_item")
    products = {p["product_id"]: p for p in _truth(shop, "product")}
    clients = {c["client_id"]: c for c in _truth(shop, "client")}
    by_weekday = Counter(o["ordered_at"].weekday() for o in orders)
    assert by_weekday[5] > 1.2 * by_weekday[1]  # Saturdays beat Tuesdays
    # yearly: toys sell far more in December than in June
    month_of = {o["order_id"]: o["ordered_at"].month for o in orders}
    toys = Counter(
        month_of[i["order_id"]] for i in items if products[i["product_id"]]["category"] == "toys"
    )
    assert toys[12] > 2 * toys[6]
    # promotions: discounted lines exist, and only during their promotion
    promoted = [i for i in items if i["promotion_id"] is not None]
    assert promoted and all(i["discount_amount"] > 0 for i in promoted)
    # segments prefer categories: professionals buy office supplies more than others do
    client_of = {o["order_id"]: o["client_id"] for o in orders}
    share = {}
    for segment in ("professional", "family"):
        mine = [
            products[i["product_id"]]["category"]
            for i in items
            if clients.get(client_of[i["order_id"]], {}).get("segment") == segment
        ]
        share[segment] = mine.count("office") / len(mine)
    assert share["professional"] > 1.5 * share["family"]
    # the status life cycle, cancellations, erasures and price changes all happen
    statuses = Counter(o["status"] for o in orders)
    assert statuses["delivered"] > statuses["cancelled"] > 0
    cancelled = {o["order_id"] for o in orders if o["status"] == "cancelled"}
    assert not any(i["order_id"] in cancelled for i in items)
    versions = pq.read_table(shop.ground_truth_path / "versions.parquet").to_pylist()
    assert any(v["table"] == "product" and v["versions"] > 2 for v in versions)
    client_ids = {v["id"] for v in versions if v["table"] == "client"}
    assert client_ids - set(clients), "some clients were erased"
    restocks = [
        r for r in _records(shop, "stock")
        if r["value"] and r["value"]["op"] == "u"
        and r["value"]["after"]["quantity_on_hand"] > r["value"]["before"]["quantity_on_hand"]
    ]  # fmt: skip
    assert restocks


def test_ground_truth_uses_the_contract_types(shop: Settings) -> None:
    table = pq.read_table(shop.ground_truth_path / "promotion.parquet")
    assert str(table.schema.field("discount_pct").type) == "decimal128(38, 2)"
    assert isinstance(table.column("starts_on")[0].as_py(), date)
