"""Schema changes in the source reach bronze and silver without a restart and without
losing data: an added column, widened numeric columns, a dropped not-null column.
Real PostgreSQL, real Debezium, the capture and the lander running throughout."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster
from tests.support.truth import expected_token, pii_key

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("schema")) as settings:
        yield settings


def _silver(settings: Settings, table: str) -> dict[int, dict]:
    rows = DeltaTable(settings.table_uri("silver", table)).to_pyarrow_table().to_pylist()
    key = f"{table}_id"
    return {r[key]: r for r in rows}


def test_added_widened_and_dropped_columns_land(shop: Settings, tmp_path: Path) -> None:
    simulate(shop, SimulateParams(tps=0, duration=None, transactions=50, clients=40, products=15))
    running = Capture(shop)
    running.wait_quiet()
    ingest(shop)
    before = _silver(shop, "client")
    seen = len(running.batches)

    with connect(shop) as conn:
        item = conn.execute("select min(order_item_id) from order_item").fetchone()
        assert item is not None
        statements = [
            # a column added, then filled
            "alter table client add column loyalty_tier text",
            "update client set loyalty_tier = 'gold', updated_at = now() where client_id <= 10",
            # an added column that holds personal data
            "alter table client add column mobile text",
            "update client set mobile = '+33 7 11 22 33 44' where client_id = 1",
            # numeric columns widened beyond what the contracts declare
            "alter table product alter column price type numeric(14, 2)",
            "update product set price = 123456789012.34 where product_id = 1",
            "alter table order_item alter column quantity type bigint",
            f"update order_item set quantity = 5000000000 where order_item_id = {item[0]}",
            # a not-null column of the contract dropped
            "alter table client drop column region",
            "update client set city = 'Lyon', updated_at = now() where client_id = 2",
        ]
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    running.wait_quiet(seen)
    running.close()
    report = ingest(shop)

    assert report.rejected == 0, "a schema change sent events to the dead letters"
    clients = _silver(shop, "client")
    assert {c for c, r in clients.items() if r["loyalty_tier"] == "gold"} == set(range(1, 11))
    assert clients[1]["mobile"] == expected_token(pii_key(shop), "+33 7 11 22 33 44")
    assert clients[2]["city"] == "Lyon" and clients[2]["region"] is None  # dropped since
    assert clients[3]["region"] == before[3]["region"]  # older values are kept
    assert _silver(shop, "product")[1]["price"] == Decimal("123456789012.34")
    assert _silver(shop, "order_item")[item[0]]["quantity"] == 5_000_000_000
    bronze = DeltaTable(shop.table_uri("bronze", "client")).to_pyarrow_table()
    assert "loyalty_tier" in bronze.column_names and "mobile" in bronze.column_names
