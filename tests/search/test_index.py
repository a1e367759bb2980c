"""The index follows the catalogue: a refresh embeds only what changed, a deleted product
leaves, and the search finds a product by its new text; filters and bad input."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.exceptions import SearchError
from lakehouse.search.index import refresh
from lakehouse.search.retrieve import Filters, searcher
from lakehouse.settings import Settings
from tests.search.labels import Product

Catalogue = tuple[pa.Table, list[Product]]


def _small(catalogue: Catalogue, n: int = 40) -> pa.Table:
    return catalogue[0].slice(0, n)


def _with(table: pa.Table, column: str, product_id: int, value: object) -> pa.Table:
    values = table[column].to_pylist()
    values[table["product_id"].to_pylist().index(product_id)] = value
    return table.set_column(
        table.schema.get_field_index(column), table.schema.field(column), pa.array(values)
    )


def test_refresh_embeds_only_changes_and_drops_deleted(
    catalogue: Catalogue, settings: Settings
) -> None:
    table = _small(catalogue)
    first = refresh(settings, table)
    assert (first.added, first.updated, first.removed, first.embedded) == (40, 0, 0, 40)
    again = refresh(settings, table)
    assert (again.unchanged, again.embedded, again.added, again.removed) == (40, 0, 0, 0)

    ids = table["product_id"].to_pylist()
    edited, repriced, deleted = ids[3], ids[5], ids[7]
    changed = _with(table, "product_description", edited, "A periscope for submarines.")
    changed = _with(changed, "version", edited, 9)
    changed = _with(changed, "price", repriced, 1234.5)
    changed = changed.filter(pc.not_equal(changed["product_id"], deleted))
    report = refresh(settings, changed)
    assert (report.added, report.updated, report.removed, report.embedded) == (0, 2, 1, 1)
    assert report.unchanged == 37

    with searcher(settings) as search:
        hits = search.search("periscope submarine", top=3)
        assert hits[0].product_id == edited
        assert deleted not in search.catalogue.ids
        priced = search.search("anything", top=40, filters=Filters(min_price=1000))
        assert [h.product_id for h in priced] == [repriced]
        assert priced[0].price == 1234.5


def test_filters_hold_for_every_mode(catalogue: Catalogue, settings: Settings) -> None:
    table, _ = catalogue
    table = _with(table, "in_stock", table["product_id"][0].as_py(), False)
    table = _with(table, "is_active", table["product_id"][1].as_py(), False)
    refresh(settings, table)
    rows = {r["product_id"]: r for r in table.to_pylist()}
    filters = Filters(categories=("Home", "grocery"), max_price=30.0, in_stock=True)
    with searcher(settings) as search:
        for mode in ("hybrid", "bm25", "dense"):
            hits = search.search("organic oak kettle", top=50, filters=filters, mode=mode)
            assert hits, mode
            for hit in hits:
                row = rows[hit.product_id]
                assert row["category"] in ("home", "grocery")
                assert row["price"] <= 30.0 and row["in_stock"] and row["is_active"]
        inactive = table["product_id"][1].as_py()
        everything = search.search("a", top=1000, mode="dense")
        assert inactive not in {h.product_id for h in everything}
        assert len(everything) == sum(table["is_active"].to_pylist())
        brand = rows[inactive]["brand"]
        for hit in search.search("gift", top=20, filters=Filters(brands=(brand.upper(),))):
            assert hit.brand == brand


@pytest.mark.parametrize(
    ("query", "filters", "message"),
    [
        ("   ", Filters(), "the query is empty"),
        ("lamp", Filters(categories=("garden",)), "no category 'garden'"),
        ("lamp", Filters(brands=("Acme",)), "no brand 'Acme'"),
    ],
)
def test_bad_input_is_one_clear_error(
    catalogue: Catalogue, settings: Settings, query: str, filters: Filters, message: str
) -> None:
    refresh(settings, _small(catalogue, 10))
    with searcher(settings) as search, pytest.raises(SearchError, match=message):
        search.search(query, filters=filters)


def test_bad_filters_and_an_empty_index_are_refused(settings: Settings) -> None:
    with pytest.raises(SearchError, match="above max-price"):
        Filters(min_price=10, max_price=5)
    with pytest.raises(SearchError, match="0 or more"):
        Filters(min_price=-1)
    with pytest.raises(SearchError, match="index is empty"), searcher(settings):
        pass


def test_products_must_fit_the_schema(catalogue: Catalogue, settings: Settings) -> None:
    table = _small(catalogue, 5)
    with pytest.raises(SearchError, match="lack the column"):
        refresh(settings, table.drop_columns(["brand"]))
    with pytest.raises(SearchError, match="repeat a product_id"):
        refresh(settings, pa.concat_tables([table, table]))
