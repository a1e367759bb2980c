"""The products the index reads from the published marts: dim_product's current, not
deleted versions (no unknown member) with their stock, in a published DuckDB file laid
out as the gate publishes it."""

from __future__ import annotations

import duckdb
import pytest

from lakehouse.exceptions import MissingTableError
from lakehouse.search.catalog import SCHEMA, published_products
from lakehouse.search.index import refresh_published
from lakehouse.search.retrieve import searcher
from lakehouse.settings import Settings

DIM_PRODUCT = """
create table marts.dim_product as select * from (values
    (-1, 0, 'unknown', null, 'unknown', 'unknown', null, false, true, false),
    (1, 1, 'Voltra eco headphones', 'A eco headphones by Voltra.', 'electronics', 'Voltra',
        210.99, true, false, false),
    (1, 2, 'Voltra eco headphones', 'A eco headphones by Voltra. Now fast.', 'electronics',
        'Voltra', 199.49, true, true, false),
    (2, 1, 'Casaluna soft lamp', 'A soft lamp.', 'home', 'Casaluna', 45.49, true, true, false),
    (3, 1, 'Bonterre eco tea', 'A eco tea.', 'grocery', 'Bonterre', 6.49, true, true, true)
) as t(product_id, version_number, product_name, product_description, category, brand,
       price, is_active, is_current, is_deleted)
"""
STOCK = """
create table marts.mart_stock_coverage as select * from (values
    (1, 'WH-NORTH', 0), (1, 'WH-SOUTH', 4), (2, 'WH-NORTH', 0)
) as t(product_id, warehouse_id, quantity_on_hand)
"""


def _publish(settings: Settings, *statements: str) -> None:
    settings.published_warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.published_warehouse)) as con:
        con.execute("create schema marts")
        for statement in statements:
            con.execute(statement)


def test_current_versions_with_their_stock(settings: Settings) -> None:
    _publish(settings, DIM_PRODUCT.replace("210.99", "cast(210.99 as decimal(38, 2))"), STOCK)
    products = published_products(settings)
    assert products.schema == SCHEMA
    rows = {r["product_id"]: r for r in products.to_pylist()}
    assert sorted(rows) == [1, 2]  # no unknown member, no deleted product
    assert rows[1]["version"] == 2 and rows[1]["price"] == 199.49
    assert rows[1]["product_description"].endswith("Now fast.")
    assert rows[1]["in_stock"] and not rows[2]["in_stock"]


def test_a_missing_mart_names_the_build(settings: Settings) -> None:
    _publish(settings, DIM_PRODUCT)
    with pytest.raises(MissingTableError, match=r"mart_stock_coverage.*lakehouse build"):
        published_products(settings)


class _Recorded:
    """A :class:`lakehouse.progress.Progress` that keeps what it was told: per task, its
    description, then [completed, total]."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.state: list[list[float | None]] = []

    def add_task(self, description: str, *, total: float | None = None) -> int:
        self.names.append(description)
        self.state.append([0.0, total])
        return len(self.names) - 1

    def advance(self, task: int, steps: float = 1) -> None:
        self.state[task][0] = (self.state[task][0] or 0.0) + steps

    def update(
        self, task: int, *, completed: float | None = None, total: float | None = None
    ) -> None:
        if completed is not None:
            self.state[task][0] = completed
        if total is not None:
            self.state[task][1] = total

    def tasks(self) -> dict[str, tuple[float | None, ...]]:
        return {name: tuple(s) for name, s in zip(self.names, self.state, strict=True)}


def test_refresh_published_follows_each_publication(settings: Settings) -> None:
    """What the pipeline runs after a publication: the index equals the published
    catalogue; a republished one with an edit and a delete costs one embedding."""
    _publish(settings, DIM_PRODUCT, STOCK)
    progress = _Recorded()
    first = refresh_published(settings, progress)
    assert (first.added, first.removed, first.embedded) == (2, 0, 2)
    assert progress.tasks() == {
        "search index: products compared": (2, 2),
        "embedding products": (2, 2),
    }
    assert refresh_published(settings).to_dict() | {"seconds": 0} == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 2,
        "embedded": 0,
        "indexed": 2,
        "seconds": 0,
    }

    # the next publication: product 2 rewritten (a new version), product 1 deleted
    settings.published_warehouse.unlink()
    edited = DIM_PRODUCT.replace(
        "'A soft lamp.', 'home', 'Casaluna', 45.49, true, true, false",
        "'A soft lamp.', 'home', 'Casaluna', 45.49, true, false, false",
    )
    edited = edited.replace(
        "'Voltra', 199.49, true, true, false)",
        "'Voltra', 199.49, true, true, true),\n    (2, 2, 'Casaluna soft lamp', "
        "'A lamp that reads the tide tables.', 'home', 'Casaluna', 45.49, true, true, false)",
    )
    _publish(settings, edited, STOCK)
    report = refresh_published(settings)
    assert (report.added, report.updated, report.removed, report.embedded) == (0, 1, 1, 1)
    with searcher(settings) as index:
        assert [h.product_id for h in index.search("tide tables", top=5)] == [2]
