"""A number widened in the source does not stop ``dbt build``: the lake keeps 38 digits
and 64-bit integers, and staging casts to the lake's types. A price beyond what the
contract declares (``numeric(10,2)``) and beyond the marts' amounts (``decimal(14,2)``)
reaches ``dim_product`` exactly; a stock level beyond 32 bits (the contract's ``int``)
reaches the inventory marts. Real PostgreSQL, real Debezium, dbt on DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import duckdb
import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from lakehouse.transform.dbt import run_dbt
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster
from tests.transform.test_dbt_quality import BUILD_ARGS

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
WIDE_PRICE = Decimal("123456789012345.67")  # 17 digits: the contract says decimal(10,2)
WIDE_STOCK = 3_000_000_000  # over 2**31: the contract says int


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with oltp_cluster(tmp_path_factory.mktemp("widened")) as settings:
        yield settings


def test_widened_numbers_build(shop: Settings) -> None:
    simulate(shop, SimulateParams(tps=0, duration=None, transactions=30, clients=20, products=10))
    running = Capture(shop)
    running.wait_quiet()
    seen = len(running.batches)
    with connect(shop) as conn:
        conn.execute("alter table product alter column price type numeric(20, 2)")
        conn.execute(
            "update product set price = %s, updated_at = updated_at + interval '1 second' "
            "where product_id = 1",
            [WIDE_PRICE],
        )
        conn.execute("alter table stock alter column quantity_on_hand type bigint")
        conn.execute(
            "update stock set quantity_on_hand = %s, updated_at = updated_at + interval "
            "'1 second' where product_id = 1",
            [WIDE_STOCK],
        )
        conn.commit()
    running.wait_quiet(seen)
    running.close()
    assert ingest(shop).rejected == 0

    target = shop.root / "target-widened"
    private = ["--target-path", str(target), "--log-path", str(target / "logs")]
    built = run_dbt(shop, ["build", *BUILD_ARGS, *private], raise_on_failure=False)

    assert built.succeeded, built.failures
    with duckdb.connect(str(shop.warehouse), read_only=True) as con:
        row = con.execute(
            "select price from main_marts.dim_product where product_id = 1 and is_current"
        ).fetchone()
        stock = con.execute(
            "select max(quantity_on_hand) from main_marts.mart_stock_coverage"
        ).fetchone()
    assert row is not None and row[0] == WIDE_PRICE
    assert stock is not None and stock[0] == WIDE_STOCK
