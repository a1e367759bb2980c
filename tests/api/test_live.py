"""The live view's socket on a generated shop landed in silver, through FastAPI's
TestClient: keys are checked before anything is sent, each scope's numbers equal the
generator's ground truth, and a change landing in silver is pushed to the connected
sockets without their asking, computed once per scope. With no socket, nothing polls."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from lakehouse.api import live, live_feed
from lakehouse.api.app import create_app
from lakehouse.cdc.change_log import ChangeLogWriter
from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.generate.business import PRIMARY_KEYS
from lakehouse.generate.debezium import Change, Recorder, Transaction
from lakehouse.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SHOP = GenerateParams(seed=7, clients=80, products=20, days=40, snapshot_day=5)
PUSH_WITHIN_S = 5.0  # a poll (0.5 s) and a computation, on a loaded machine


@dataclass
class Truth:
    """The shop's final state as the generator knows it, plus what the tests add."""

    orders: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    region_of: dict[int, str]
    stock: dict[tuple[int, str], dict[str, Any]]

    def expected(self, region: str | None, hours: int) -> dict[str, Any]:
        """Orders (not cancelled) and their lines' net value per hour over the scope's
        window, written out from the view's rule: a source whose newest order is not
        within the last hours of our clock is seen on its own clock."""
        orders = [
            o for o in self.orders if region is None or self.region_of[o["client_id"]] == region
        ]
        newest = max(o["ordered_at"] for o in orders)
        now = datetime.now(UTC).replace(tzinfo=None)
        recent = now - timedelta(hours=hours) <= newest <= now + timedelta(minutes=5)
        end = max(now, newest) if recent else newest
        last = end.replace(minute=0, second=0, microsecond=0)
        start = last - timedelta(hours=hours - 1)
        value: dict[int, Decimal] = {}
        for line in self.lines:
            net = line["quantity"] * line["unit_price"] - line["discount_amount"]
            value[line["order_id"]] = value.get(line["order_id"], Decimal(0)) + net
        counts = {start + timedelta(hours=i): 0 for i in range(hours)}
        revenue = {hour: Decimal(0) for hour in counts}
        for o in orders:
            hour = o["ordered_at"].replace(minute=0, second=0, microsecond=0)
            if hour in counts and o["status"] != "cancelled":
                counts[hour] += 1
                revenue[hour] += value.get(o["order_id"], Decimal(0))
        return {
            "hours": [h.isoformat() + "Z" for h in counts],
            "orders": list(counts.values()),
            "revenue": [float(v) for v in revenue.values()],
            "stock_outs": sum(1 for s in self.stock.values() if s["quantity_on_hand"] <= 0),
        }


@dataclass
class Shop:
    settings: Settings
    truth: Truth
    lsn: int = 10**12  # above every position the generator used


def _rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(
        settings.ground_truth_path / f"{table}.parquet"
    ).to_pylist()
    return rows


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("live"), pii_key="f" * 32)
    generate(settings, SHOP)
    ingest(settings)
    truth = Truth(
        orders=_rows(settings, "orders"),
        lines=_rows(settings, "order_item"),
        region_of={c["client_id"]: c["region"] for c in _rows(settings, "client")},
        stock={(s["product_id"], s["warehouse_id"]): s for s in _rows(settings, "stock")},
    )
    return Shop(settings, truth)


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with TestClient(create_app(shop.settings, refresh=False)) as test_client:
        yield test_client


def _receive(ws: Any, timeout: float = PUSH_WITHIN_S) -> dict[str, Any]:
    """The next message, or a failure after ``timeout`` (TestClient's own wait has none)."""
    with ThreadPoolExecutor(1) as pool:
        message: dict[str, Any] = pool.submit(ws.receive_json).result(timeout)
    return message


def _receive_until(
    ws: Any, expected: dict[str, Any], timeout: float = PUSH_WITHIN_S
) -> list[dict[str, Any]]:
    """The snapshots pushed until one shows ``expected`` (silver's tables move one commit
    at a time, so a landing may be seen halfway first); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = [_receive(ws, max(deadline - time.monotonic(), 0.01))]
    while _as_seen(seen[-1]) != expected:
        seen.append(_receive(ws, max(deadline - time.monotonic(), 0.01)))
    return seen


def _open(client: TestClient, key: str, hours: int | None = None, query: str = "") -> Any:
    ws = client.websocket_connect(f"/live/ws{query}").__enter__()
    ws.send_text(json.dumps({"key": key} if hours is None else {"key": key, "hours": hours}))
    return ws


def _open_with(client: TestClient, first: dict[str, Any]) -> Any:
    ws = client.websocket_connect("/live/ws").__enter__()
    ws.send_text(json.dumps(first))
    return ws


def _closed_with(client: TestClient, first: str, query: str = "") -> int:
    """The close code the server answers ``first`` with (fails if it sends data)."""
    with client.websocket_connect(f"/live/ws{query}") as ws:
        ws.send_text(first)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code


def _as_seen(snapshot: dict[str, Any]) -> dict[str, Any]:
    buckets = snapshot["buckets"]
    return {
        "hours": [b["hour"] for b in buckets],
        "orders": [b["orders"] for b in buckets],
        "revenue": [b["revenue"] for b in buckets],
        "stock_outs": snapshot["totals"]["stock_outs"],
    }


def test_the_page_is_served_without_a_key_and_carries_no_data(client: TestClient) -> None:
    page = client.get("/live")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "new WebSocket(" in page.text and "location.hash" in page.text
    assert "http://" not in page.text.replace('"http://www.w3.org/2000/svg"', "")  # offline
    assert "https://" not in page.text


def test_a_socket_without_a_valid_key_is_closed_before_any_data(
    client: TestClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = shop.settings.api_secret()
    refused = {
        "a wrong key": json.dumps({"key": "x" * 40}),
        "a bare wrong key": "y" * 40,
        "an empty key": json.dumps({"key": ""}),
        "a key that is no string": json.dumps({"key": 12345}),
        "no key at all": json.dumps({"hours": 6}),
        "the key with a character more": json.dumps({"key": key + "a"}),
        "an oversized message": json.dumps({"key": key, "pad": "p" * 5000}),
    }
    for what, first in refused.items():
        assert _closed_with(client, first) == 1008, what
    # a key in the query string is not read: the first message decides
    assert _closed_with(client, "nothing", query=f"?key={key}") == 1008
    monkeypatch.setattr(live, "AUTH_SECONDS", 0.3)
    with client.websocket_connect("/live/ws") as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()  # says nothing: closed once the time is up
    assert closed.value.code == 1008
    # the positive control: the right key, as JSON or bare, gets a snapshot at once
    for first in (json.dumps({"key": key}), key):
        with client.websocket_connect("/live/ws") as ws:
            ws.send_text(first)
            assert _receive(ws)["type"] == "snapshot"


def test_bad_windows_are_refused_and_a_window_can_change(client: TestClient, shop: Shop) -> None:
    key = shop.settings.api_secret()
    for hours in (0, 49, -1, "six", 1.5, True):
        assert _closed_with(client, json.dumps({"key": key, "hours": hours})) == 1007, hours
    assert _closed_with(client, key, query="?hours=100") == 1007
    with client.websocket_connect("/live/ws?hours=12") as ws:
        ws.send_text(key)
        assert len(_receive(ws)["buckets"]) == 12
        ws.send_text(json.dumps({"hours": 2}))
        changed = _receive(ws)
        assert (changed["hours"], len(changed["buckets"])) == (2, 2)
        assert _as_seen(changed) == shop.truth.expected(None, 2)


def test_each_scope_sees_the_ground_truth_of_its_own_clients(
    client: TestClient, shop: Shop
) -> None:
    settings = shop.settings
    scopes: dict[str | None, str] = {None: settings.api_secret()}
    scopes.update(settings.api_region_secrets())
    assert len(scopes) >= 2
    for region, key in scopes.items():
        for hours in (6, 48):
            ws = _open(client, key, hours)
            try:
                snapshot = _receive(ws)
            finally:
                ws.__exit__(None, None, None)
            expected = shop.truth.expected(region, hours)
            if region is not None:
                expected["stock_outs"] = None  # stock is no region's to read
            assert snapshot["scope"] == (region or "all")
            assert snapshot["clock"] == "data"  # a shop of 2024: its own clock
            assert _as_seen(snapshot) == expected, (region, hours)
            assert snapshot["totals"]["orders"] == sum(expected["orders"])
    # a region's key cannot ask for more than its region, whatever else it sends
    north_key = settings.api_region_secrets()["north"]
    for asked in ({"region": None, "scope": "all"}, {"region": "south"}, {"key": key}):
        ws = _open_with(client, {**asked, "key": north_key})
        try:
            snapshot = _receive(ws)
            ws.send_text(json.dumps({**asked, "hours": 48, "region": "south"}))
            widened = _receive(ws)
        finally:
            ws.__exit__(None, None, None)
        assert snapshot["scope"] == widened["scope"] == "north"
        assert _as_seen(widened) == {**shop.truth.expected("north", 48), "stock_outs": None}
    # a region's window holds orders of its clients only: the whole business's differ
    whole = shop.truth.expected(None, 48)
    north = shop.truth.expected("north", 48)
    assert sum(north["orders"]) > 0 and north != whole


def _land(shop: Shop, transactions: list[list[Change]], at: datetime) -> None:
    """Commit ``transactions`` as the source would, record them as Debezium events in the
    change log, and land them (bronze, then silver) as `lakehouse ingest` does."""
    settings = shop.settings
    staging = settings.root / f"staging-{shop.lsn}"
    recorder = Recorder(
        staging,
        settings.topic_prefix,
        PRIMARY_KEYS,
        random.Random(0),
        segment_events=1_000_000,
        duplicate_rate=0.0,
        interleave_rate=0.0,
    )
    recorder.recording, recorder.lsn, recorder.tx_id = True, shop.lsn, shop.lsn // 1000
    recorder.last_commit = shop.lsn
    commit_us = int(at.replace(tzinfo=UTC).timestamp() * 1_000_000)
    for changes in transactions:
        recorder.commit(Transaction(commit_us, changes))
        commit_us += 1000
    recorder.close()
    shop.lsn = recorder.lsn + 10_000
    with ChangeLogWriter(settings.changes_path) as log:
        for topic in sorted(p.name for p in staging.iterdir()):
            for segment in sorted((staging / topic).glob("*.jsonl")):
                log.append(topic, segment.read_bytes().splitlines(keepends=True))
    ingest(settings)


def _wire_time(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _wire_tz(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def _order(
    truth: Truth,
    order_id: int,
    client_id: int,
    at: datetime,
    lines: list[tuple[int, int, str]],
    first_line: int,
) -> list[Change]:
    """A placed order with ``lines`` of (product, quantity, unit price), as one
    transaction's changes; added to ``truth``."""
    row = {
        "order_id": order_id,
        "client_id": client_id,
        "transporter_id": 1,
        "status": "placed",
        "ordered_at": _wire_time(at),
        "shipped_at": None,
        "delivered_at": None,
        "cancelled_at": None,
        "updated_at": _wire_tz(at),
    }
    changes = [Change("orders", "c", {"order_id": order_id}, None, row)]
    truth.orders.append({**row, "ordered_at": at})
    for i, (product, quantity, price) in enumerate(lines):
        line = {
            "order_item_id": first_line + i,
            "order_id": order_id,
            "product_id": product,
            "promotion_id": None,
            "quantity": quantity,
            "unit_price": price,
            "discount_pct": "0.00",
            "discount_amount": "0.00",
            "updated_at": _wire_tz(at),
        }
        changes.append(Change("order_item", "c", {"order_item_id": first_line + i}, None, line))
        truth.lines.append({**line, "unit_price": Decimal(price), "discount_amount": Decimal(0)})
    return changes


def test_a_change_landing_in_silver_is_pushed_once_per_scope(
    client: TestClient, shop: Shop
) -> None:
    settings, truth = shop.settings, shop.truth
    key, north_key = settings.api_secret(), settings.api_region_secrets()["north"]
    sockets = [_open(client, key), _open(client, key), _open(client, north_key)]
    try:
        first = [_receive(ws) for ws in sockets]
        hub: live_feed.LiveHub = client.app.state.live_hub  # type: ignore[attr-defined]
        assert hub.watching
        # nothing moved: nothing is computed again, nothing is sent
        computed = live_feed.RECOMPUTES._value.get()
        time.sleep(3 * hub.poll_seconds)
        assert live_feed.RECOMPUTES._value.get() == computed

        newest = max(o["ordered_at"] for o in truth.orders)
        at = newest + timedelta(minutes=10)
        north = next(c for c, r in truth.region_of.items() if r == "north")
        south = next(c for c, r in truth.region_of.items() if r == "south")
        next_order = max(o["order_id"] for o in truth.orders) + 1
        next_line = max(line["order_item_id"] for line in truth.lines) + 1
        in_stock = next(k for k, s in sorted(truth.stock.items()) if s["quantity_on_hand"] > 0)
        emptied = {**truth.stock[in_stock], "quantity_on_hand": 0, "updated_at": _wire_tz(at)}
        truth.stock[in_stock] = {**emptied}
        _land(
            shop,
            [
                _order(truth, next_order, north, at, [(1, 2, "19.99"), (2, 1, "5.50")], next_line),
                _order(truth, next_order + 1, south, at, [(3, 4, "7.25")], next_line + 2),
                [
                    Change(
                        "stock",
                        "u",
                        dict(zip(("product_id", "warehouse_id"), in_stock, strict=True)),
                        None,
                        emptied,
                    )
                ],
            ],
            at,
        )
        landed = time.monotonic()
        whole = truth.expected(None, 6)
        north_after = {**truth.expected("north", 6), "stock_outs": None}
        seen = [
            _receive_until(ws, want)
            for ws, want in zip(sockets, [whole, whole, north_after], strict=True)
        ]
        delay = time.monotonic() - landed
    finally:
        for ws in sockets:
            ws.__exit__(None, None, None)
    print(f"pushed {delay:.2f} s after the landing")  # reported with -s
    pushed = [s[-1] for s in seen]
    for before, after in zip(first, pushed, strict=True):
        assert after["silver_versions"] != before["silver_versions"]
    assert pushed[0]["totals"]["stock_outs"] == first[0]["totals"]["stock_outs"] + 1
    assert pushed[0]["buckets"][-1]["new_stock_outs"] >= 1
    assert pushed[0]["totals"]["orders"] >= 2
    assert pushed[2]["buckets"][-1]["revenue"] >= 45.48  # its order, not the south one's
    # three sockets, two scopes: two computations per move of silver, whatever the sockets
    moves = {json.dumps(s["silver_versions"], sort_keys=True) for s in seen[0]}
    assert live_feed.RECOMPUTES._value.get() - computed == 2 * len(moves)
    # the last socket gone, the watcher stops: nothing polls an idle process
    deadline = time.monotonic() + 5
    while hub.watching and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not hub.watching


def test_the_window_follows_our_clock_when_the_source_is_live() -> None:
    now = datetime(2026, 12, 4, 23, 40)
    live_window = live_feed.Window.of(now - timedelta(minutes=3), now, 6)
    assert (live_window.clock, live_window.end) == ("wall", now)
    assert (live_window.start, live_window.stop) == (
        datetime(2026, 12, 4, 18),
        datetime(2026, 12, 5),
    )
    quiet = live_feed.Window.of(now - timedelta(hours=7), now, 6)  # a source that stopped
    assert (quiet.clock, quiet.end) == ("data", now - timedelta(hours=7))
    skewed = live_feed.Window.of(now + timedelta(minutes=2), now, 6)
    assert (skewed.clock, skewed.end) == ("wall", now + timedelta(minutes=2))
    empty = live_feed.Window.of(None, now, 1)
    assert (empty.clock, len(empty.hours())) == ("wall", 1)


def test_a_lake_without_silver_answers_with_zeros(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, pii_key="f" * 32)
    with TestClient(create_app(settings, refresh=False)) as test_client:
        ws = _open(test_client, settings.api_secret())
        try:
            snapshot = _receive(ws)
        finally:
            ws.__exit__(None, None, None)
    assert snapshot["missing"] == list(live_feed.LIVE_TABLES)
    assert snapshot["totals"] == {
        "orders": 0,
        "revenue": 0.0,
        "stock_outs": None,
        "low_stock": None,
    }


def test_a_damaged_table_is_reported_on_the_socket_and_read_again_once_repaired(
    tmp_path: Path, shop: Shop
) -> None:
    """A silver log that cannot be read: the socket is told (the page keeps its numbers and
    says why), stays open, and gets the numbers once the table reads again."""
    import shutil

    settings = load_settings(data_dir=tmp_path / "data", pii_key="f" * 32)
    shutil.copytree(shop.settings.root / "lake", settings.root / "lake")
    log_dir = Path(settings.table_uri("silver", "orders")) / "_delta_log"
    first_commit = log_dir / "00000000000000000000.json"
    good = first_commit.read_bytes()
    first_commit.write_bytes(b"{not a delta log")
    with TestClient(create_app(settings, refresh=False)) as test_client:
        ws = _open(test_client, settings.api_secret())
        try:
            problem = _receive(ws)
            assert problem["type"] == "problem"
            assert "silver" in problem["detail"] and "orders" in problem["detail"]
            first_commit.write_bytes(good)  # repaired: the next poll reads it
            repaired = _receive(ws)
        finally:
            ws.__exit__(None, None, None)
    assert repaired["type"] == "snapshot"
    assert _as_seen(repaired)["orders"] == shop.truth.expected(None, 6)["orders"]
