"""The demo shop run live in PostgreSQL: real transactions, every table, and a resumption.

The truth is the simulated business's own state (its tables, kept as Debezium's JSON
values) and the contracts' rules; the database is read back with SQL's own conversions,
not with the simulator's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from lakehouse.contracts import Contract, load_contracts
from lakehouse.exceptions import OltpError
from lakehouse.generate.debezium import Change, Transaction
from lakehouse.oltp.client import connect
from lakehouse.oltp.cluster import Cluster
from lakehouse.oltp.simulate import SimulateParams, SimulateSummary, simulate
from lakehouse.oltp.writer import DatabaseRecorder
from lakehouse.settings import Settings
from tests.support.oltp import oltp_cluster

pytestmark = pytest.mark.integration

# a small shop with few orders a day: 300 transactions span weeks of business time, so
# rarer events (promotions, sign-ups, launches) happen too
PARAMS = SimulateParams(
    tps=0, duration=None, transactions=300, seed=3, clients=60, products=20, orders_per_day=2
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("oltp")) as running:
        yield running


@pytest.fixture(scope="module")
def contracts(settings: Settings) -> dict[str, Contract]:
    return load_contracts(settings.contracts_dir)


@pytest.fixture(scope="module")
def first(settings: Settings) -> SimulateSummary:
    return simulate(settings, PARAMS)


def _as_wire(column: str, ctype: str) -> str:
    """SQL turning a column into its Debezium JSON value, independently of the simulator."""
    if ctype.startswith("decimal"):
        return f"{column}::text"
    if ctype == "timestamp":
        return f"(extract(epoch from {column}) * 1000000)::bigint"
    if ctype == "timestamptz":
        return f"""to_char({column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    if ctype == "date":
        return f"{column} - date '1970-01-01'"
    return column


def _database(
    settings: Settings, contracts: dict[str, Contract]
) -> dict[str, list[dict[str, Any]]]:
    state = {}
    with connect(settings, autocommit=True) as conn:
        for name, contract in contracts.items():
            select = ", ".join(_as_wire(c.name, c.type) for c in contract.columns)
            order = ", ".join(contract.primary_key)
            rows = conn.execute(f"select {select} from {name} order by {order}").fetchall()
            state[name] = [dict(zip(contract.column_names, r, strict=True)) for r in rows]
    return state


def _business(summary: SimulateSummary) -> dict[str, list[dict[str, Any]]]:
    assert summary.business is not None
    return {t: [rows[k] for k in sorted(rows)] for t, rows in summary.business.tables.items()}


def _counts(settings: Settings) -> dict[str, int]:
    return Cluster(settings).status().tables


def _rule_breaks(settings: Settings) -> dict[str, int]:
    """Rows breaking the contracts' rules and the order life cycle; all must be 0."""
    checks = {
        "discount_amount is quantity x price x pct, half up": """
            select count(*) from order_item where discount_amount
                <> round(quantity * unit_price * discount_pct / 100, 2)""",
        "net is gross minus discount": """
            select count(*) from sale where net_amount <> gross_amount - discount_amount""",
        "a sale's gross is its order's lines": """
            select count(*) from sale s where gross_amount <> (
                select coalesce(sum(quantity * unit_price), 0) from order_item i
                where i.order_id = s.order_id)""",
        "one sale per paid order": """
            select count(*) from orders o where (o.status in ('paid', 'shipped', 'delivered'))
                <> exists (select 1 from sale s where s.order_id = o.order_id)""",
        "a cancelled order has no lines": """
            select count(*) from orders o where status = 'cancelled'
                and exists (select 1 from order_item i where i.order_id = o.order_id)""",
        "an order that is not cancelled has lines": """
            select count(*) from orders o where status <> 'cancelled'
                and not exists (select 1 from order_item i where i.order_id = o.order_id)""",
        "timestamps follow the status": """
            select count(*) from orders where
                (shipped_at is not null) <> (status in ('shipped', 'delivered'))
                or (delivered_at is not null) <> (status = 'delivered')
                or (cancelled_at is not null) <> (status = 'cancelled')
                or shipped_at < ordered_at or delivered_at < shipped_at""",
        "a sale belongs to its order's client": """
            select count(*) from sale s join orders o using (order_id)
                where s.client_id <> o.client_id""",
        "every product is stocked in every warehouse": """
            select count(*) from product p where
                (select count(*) from stock s where s.product_id = p.product_id) <> 3""",
    }
    with connect(settings, autocommit=True) as conn:
        return {name: conn.execute(sql).fetchone()[0] for name, sql in checks.items()}  # type: ignore[index]


def test_simulate_fills_every_table_as_the_business_did(
    settings: Settings, contracts: dict[str, Contract], first: SimulateSummary
) -> None:
    assert not first.resumed and first.transactions == PARAMS.transactions
    assert first.loaded["client"] == PARAMS.clients and first.loaded["product"] == PARAMS.products
    counts = _counts(settings)
    assert all(counts[t] > 0 for t in contracts), counts
    ops = {op for _, op in first.changes}
    assert ops == {"c", "u", "d"}
    # the database holds exactly the simulated shop, value for value
    assert _database(settings, contracts) == _business(first)
    assert _rule_breaks(settings) == dict.fromkeys(_rule_breaks(settings), 0)


def test_a_second_simulate_carries_on(
    settings: Settings, contracts: dict[str, Contract], first: SimulateSummary
) -> None:
    before = _counts(settings)
    with connect(settings, autocommit=True) as conn:
        last_order = conn.execute("select max(order_id), max(ordered_at) from orders").fetchone()
    second = simulate(settings, SimulateParams(tps=0, duration=None, transactions=200, seed=3))
    assert second.resumed and not second.loaded and second.transactions == 200
    after = _counts(settings)
    assert sum(after.values()) > sum(before.values())
    assert after["orders"] > before["orders"] and after["order_item"] > before["order_item"]
    with connect(settings, autocommit=True) as conn:
        new = conn.execute(
            "select min(order_id), min(ordered_at) from orders where order_id > %s",
            (last_order[0],),  # type: ignore[index]
        ).fetchone()
    assert new is not None and new[0] == last_order[0] + 1  # type: ignore[index]
    assert new[1] > last_order[1]  # type: ignore[index]  # business time moves on
    assert _database(settings, contracts) == _business(second)
    assert set(_rule_breaks(settings).values()) == {0}


def test_a_paced_run_writes_what_the_business_did(
    settings: Settings, contracts: dict[str, Contract], first: SimulateSummary
) -> None:
    """At a requested pace each transaction is its own parameterised round trip (not the
    unpaced batches of text): the same statements, so the same rows."""
    paced = simulate(settings, SimulateParams(tps=2000, duration=None, transactions=150, seed=4))
    assert paced.resumed and paced.transactions == 150
    assert {op for _, op in paced.changes} == {"c", "u", "d"}
    assert _database(settings, contracts) == _business(paced)
    assert set(_rule_breaks(settings).values()) == {0}


@pytest.mark.parametrize("tps", [0.0, 1000.0])
def test_a_change_that_misses_its_row_is_reported(
    settings: Settings, contracts: dict[str, Contract], first: SimulateSummary, tps: float
) -> None:
    """The positive control of the writer's check, paced and unpaced: an update of a row
    another program deleted touches none, and the simulator says so."""
    gone = {"transporter_id": -1}  # no such row
    before = {**gone, "name": "Gone", "service_level": "economy", "cost_per_order": "1.00"}
    change = Change("transporter", "u", gone, before, {**before, "cost_per_order": "2.00"})
    params = SimulateParams(tps=tps, duration=None, transactions=10)
    with connect(settings, autocommit=True) as conn:
        sink = DatabaseRecorder(
            conn, contracts, params, SimulateSummary(resumed=True), load_snapshot=False
        )
        with pytest.raises(OltpError, match=r"u of transporter .* touched 0 rows"):
            sink.commit(Transaction(commit_us=0, changes=[change]))
            sink.close()


def test_status_reports_the_row_counts(settings: Settings, first: SimulateSummary) -> None:
    with connect(settings, autocommit=True) as conn:
        truth = {
            t: conn.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[index]
            for t in ("client", "order_item", "orders", "product", "promotion", "sale", "stock")
        }
    status = Cluster(settings).status()
    assert status.running and {t: status.tables[t] for t in truth} == truth
    env = {
        **os.environ,
        "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
        "LAKEHOUSE_DATA_DIR": str(settings.data_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli.main", "oltp", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["running"] and report["migrations"] == ["0001_shop_schema"]
    assert {t: report["tables"][t] for t in truth} == truth


def test_the_cli_runs_the_simulator(settings: Settings, first: SimulateSummary) -> None:
    env = {
        **os.environ,
        "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
        "LAKEHOUSE_DATA_DIR": str(settings.data_dir),
    }
    out = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli.main", "simulate", "--tps", "40", "--duration", "1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "carried on from the shop" in out.stdout
    committed = int(out.stdout.split(" transactions in ")[0].split()[-1].replace(",", ""))
    assert 25 <= committed <= 41  # paced: about 40 in one second


def test_a_stuck_simulator_is_reported_not_waited_for(
    settings: Settings, first: SimulateSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live path runs the simulator in a process of its own: when it says nothing for
    SIMULATOR_SILENCE_S (here every table is locked), the wait ends with a message."""
    from lakehouse.exceptions import SourceError
    from lakehouse.pipeline import live

    monkeypatch.setattr(live, "SIMULATOR_SILENCE_S", 10.0)
    with connect(settings) as blocker:
        tables = ", ".join(load_contracts(settings.contracts_dir))
        blocker.execute(f"lock table {tables} in access exclusive mode")
        began = time.monotonic()
        with pytest.raises(SourceError, match="has said nothing for 10 s"):
            live._simulate_in_child(settings, replace(PARAMS, transactions=5), lambda _: None)
        waited = time.monotonic() - began
        blocker.rollback()
    assert 10 <= waited < 60
