"""``GET /search`` against the published catalogue: the product a query names comes
first, filters hold against the published marts, pages join up to one long list."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse.settings import Settings
from lakehouse.warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]
LABELLED = Path(__file__).resolve().parent.parent / "search" / "queries.yaml"


def _catalogue(settings: Settings) -> list[dict]:  # type: ignore[type-arg]
    with connect(settings) as marts:
        return marts.query(
            "select p.product_id, p.product_name, p.category, cast(p.price as double) as price, "
            "coalesce(s.on_hand, 0) > 0 as in_stock "
            f"from {marts.qualified('dim_product')} as p left join ("
            "select product_id, sum(quantity_on_hand) as on_hand "
            f"from {marts.qualified('mart_stock_coverage')} group by product_id"
            ") as s on p.product_id = s.product_id "
            "where p.is_current and not p.is_deleted and p.product_id >= 0"
        ).to_pylist()


def test_a_product_s_own_name_finds_it_first(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    catalogue = _catalogue(served)
    names: dict[str, list[int]] = {}
    for row in catalogue:
        names.setdefault(row["product_name"], []).append(row["product_id"])
    found = 0
    for name, ids in list(names.items())[:15]:
        got = api.get("/search", params={"q": name, "limit": 3}, headers=key).json()
        found += got["items"][0]["product_id"] in ids
    assert found >= 13, f"{found} of 15 names found first"


def test_filters_hold_against_the_published_marts(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    by_id = {row["product_id"]: row for row in _catalogue(served)}
    category = sorted({row["category"] for row in by_id.values()})[0]
    got = api.get(
        "/search",
        params={"q": "gift", "category": category, "in_stock": "true", "limit": 50},
        headers=key,
    ).json()["items"]
    assert got
    for hit in got:
        row = by_id[hit["product_id"]]
        assert row["category"] == category and row["in_stock"]
        assert hit["price"] == pytest.approx(row["price"])
    # a price band
    prices = sorted(row["price"] for row in by_id.values())
    low, high = prices[len(prices) // 4], prices[len(prices) // 2]
    banded = api.get(
        "/search",
        params={"q": "quality", "min_price": low, "max_price": high, "limit": 100},
        headers=key,
    ).json()["items"]
    assert banded and all(low <= h["price"] <= high for h in banded)


def test_pages_join_up_to_one_list(api: TestClient, key: dict[str, str]) -> None:
    whole = api.get("/search", params={"q": "outdoor", "limit": 30}, headers=key).json()
    pages, offset = [], 0
    while offset is not None and offset < 30:
        page = api.get(
            "/search", params={"q": "outdoor", "limit": 7, "offset": offset}, headers=key
        ).json()
        pages += page["items"]
        offset = page["next_offset"]
    assert [h["product_id"] for h in pages[:30]] == [h["product_id"] for h in whole["items"]]
    assert len({h["product_id"] for h in pages}) == len(pages)


def test_a_query_of_stop_words_alone_still_answers(api: TestClient, key: dict[str, str]) -> None:
    """BM25 has no word to match in "the a" (it raised once); the vectors still rank."""
    got = api.get("/search", params={"q": "the a", "limit": 5}, headers=key)
    assert got.status_code == 200, got.text
    assert len(got.json()["items"]) == 5
    bm25 = api.get("/search", params={"q": "the a", "mode": "bm25"}, headers=key).json()
    assert bm25["items"] == []


def test_the_api_ranks_as_qdrant_does(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    """The API ranks by the vectors with numpy (Qdrant's local mode checks filters point
    by point in Python); the index's own Qdrant search gives the same top ten."""
    import yaml

    from lakehouse.search.retrieve import Filters, searcher

    queries = [q["query"] for q in yaml.safe_load(LABELLED.read_text())][:24]
    with searcher(served) as qdrant:
        for query in queries:
            for params, filters in (
                ({}, Filters()),
                ({"in_stock": "true"}, Filters(in_stock=True)),
            ):
                want = [h.product_id for h in qdrant.search(query, 10, filters)]
                got = api.get("/search", params={"q": query, **params}, headers=key).json()
                assert [h["product_id"] for h in got["items"]] == want, query
