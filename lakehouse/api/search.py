"""``GET /search``: the product search of :mod:`lakehouse.search` with its filters,
paginated.

The API serves from an in-memory copy of the index (:func:`lakehouse.search.index.
in_memory_copy`), taken again when the index changes (its :func:`~lakehouse.search.index.
signature`), so local mode's folder stays free for the refresh that follows each
publication, and a query never waits for a file. Products are not regional: every scope
searches the whole catalogue.
"""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from lakehouse.api.deps import Caller, State
from lakehouse.api.problems import Problem
from lakehouse.api.state import ServingState
from lakehouse.search.retrieve import MAX_TOP, Filters, Searcher

router = APIRouter(tags=["search"])


class ProductHit(BaseModel):
    product_id: int
    score: float = Field(description="the fused score (higher is better)")
    product_name: str
    category: str
    brand: str
    price: float | None
    in_stock: bool


class SearchPage(BaseModel):
    query: str
    mode: str
    offset: int
    limit: int
    items: list[ProductHit]
    next_offset: int | None = Field(description="the offset of the next page; null: no more")


class _Index:
    """The served copy of the index and the signature it was copied at."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self.searcher: Searcher | None = None
        self.signature: str | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        from lakehouse.search.index import in_memory_copy, signature

        settings = self.state.settings
        if not (settings.search_qdrant_url or (settings.search_dir / "qdrant").exists()):
            return
        with self._lock:
            now = signature(settings)
            if now == self.signature:
                return
            copy = in_memory_copy(settings)
            searcher = Searcher(copy, vectors_in_memory=True)
            self.searcher, self.signature = searcher, now


def install(state: ServingState) -> None:
    index = _Index(state)
    state.hold(__name__, index, index.refresh)


def _searcher(state: ServingState) -> Searcher:
    index: _Index = state.parts[__name__]
    if index.searcher is None:
        raise Problem(
            503,
            "the search index is not built yet: run `lakehouse search-index refresh` (the "
            "pipeline refreshes it after each publication)",
            kind="not-published",
        )
    return index.searcher


@router.get("/search", summary="Find products by what they are or are for")
def search(
    state: State,
    caller: Caller,
    q: Annotated[str, Query(min_length=1, max_length=500, description="the query")],
    limit: Annotated[int, Query(ge=1, le=100, description="results per page")] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_TOP - 1)] = 0,
    category: Annotated[list[str] | None, Query(description="only these categories")] = None,
    brand: Annotated[list[str] | None, Query(description="only these brands")] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    in_stock: bool = False,
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
) -> SearchPage:
    if not q.strip():
        raise Problem(422, "q: the query is empty: say what you are looking for", kind="bad-search")
    filters = Filters(
        categories=tuple(category or ()),
        brands=tuple(brand or ()),
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    )
    wanted = min(offset + limit + 1, MAX_TOP)
    hits = _searcher(state).search(q, top=wanted, filters=filters, mode=mode)
    page = hits[offset : offset + limit]
    more = len(hits) > offset + limit and offset + limit < MAX_TOP
    return SearchPage(
        query=q,
        mode=mode,
        offset=offset,
        limit=limit,
        items=[ProductHit(**vars(hit)) for hit in page],
        next_offset=offset + limit if more else None,
    )
