"""Hybrid product search: BM25 over the products' words and their embeddings, fused.

BM25 (``bm25s``, English stop words, Snowball stems) finds the words a shopper typed;
the embedding finds what the words mean (a paraphrase, a use, a misspelling that keeps most
of a word's pieces). Each ranks the products that pass the filters; reciprocal rank fusion
or a convex combination of their rescaled scores (:class:`Fusion`) merges them.

The dense side queries the Qdrant collection (filters as Qdrant conditions, so a server
does the same); the BM25 side is built in memory from the collection's payloads when the
searcher opens (milliseconds for thousands of products), so it always matches the vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lakehouse.exceptions import SearchError
from lakehouse.search.embed import embedder
from lakehouse.search.index import COLLECTION, VECTOR, indexed_payloads, open_store

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

    from lakehouse.settings import Settings

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")
RRF_K = 60
MIN_DEPTH = 100  # candidates each side brings to the fusion
MAX_TOP = 1000
QUERY_CACHE = 4096  # distinct queries whose embedding a searcher keeps (1.5 KB each)


@dataclass(frozen=True)
class Filters:
    """What a result must be: in one of ``categories``, of one of ``brands`` (either empty:
    any), priced within [``min_price``, ``max_price``], in stock if ``in_stock``. Products
    the shop no longer sells (not active) are left out unless ``include_inactive``."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False
    include_inactive: bool = False

    def __post_init__(self) -> None:
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise SearchError(f"{name.replace('_', '-')} must be a price of 0 or more")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise SearchError(f"min-price {self.min_price:g} is above max-price {self.max_price:g}")


@dataclass(frozen=True)
class Fusion:
    """How the hybrid merges the two rankings. ``convex``: ``lexical_weight`` x the BM25
    score over the query's best + the rest x the cosine rescaled to [0, 1] over the
    candidates (Bruch et al. 2023 found this beats reciprocal rank once its one weight is
    set on held-out queries); ``rrf``: ``1 / (RRF_K + rank)`` per list, weighted alike.
    The default was chosen on half the labelled queries (``bench/search.py --tune``)."""

    kind: Literal["convex", "rrf"] = "convex"
    lexical_weight: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.lexical_weight <= 1:
            raise SearchError("the fusion's lexical weight must be between 0 and 1")


def fuse(
    lexical: Sequence[tuple[int, float]], semantic: Sequence[tuple[int, float]], fusion: Fusion
) -> dict[int, float]:
    """One score per product from the BM25 and the vector rankings (best first each)."""
    w = fusion.lexical_weight
    scores: dict[int, float] = {}
    if fusion.kind == "rrf":
        for weight, ranking in ((w, lexical), (1 - w, semantic)):
            for rank, (pid, _) in enumerate(ranking, start=1):
                scores[pid] = scores.get(pid, 0.0) + weight / (RRF_K + rank)
        return scores
    if lexical:
        top = lexical[0][1]
        for pid, score in lexical:
            scores[pid] = w * score / top
    if semantic:
        high, low = semantic[0][1], semantic[-1][1]
        span = high - low if high > low else 1.0
        for pid, score in semantic:
            scores[pid] = scores.get(pid, 0.0) + (1 - w) * (score - low) / span
    return scores


@dataclass(frozen=True)
class Hit:
    product_id: int
    score: float
    product_name: str
    category: str
    brand: str
    price: float | None
    in_stock: bool


@dataclass
class _Catalogue:
    """The indexed products as columns, for the BM25 side and its filters."""

    ids: np.ndarray
    payloads: list[dict[str, Any]]
    category: np.ndarray
    brand: np.ndarray
    price: np.ndarray
    in_stock: np.ndarray
    is_active: np.ndarray
    by_id: dict[int, int] = field(default_factory=dict)


class Searcher:
    """Searches one opened index; see :func:`searcher`. :meth:`search` with a ``mode``
    other than hybrid gives one side's own scores (BM25, cosine)."""

    def __init__(
        self, client: QdrantClient, fusion: Fusion | None = None, *, vectors_in_memory: bool = False
    ) -> None:
        """``vectors_in_memory``: rank by the vectors with numpy, the filters as the BM25
        side applies them, instead of asking Qdrant: for a local index (the API's copy),
        whose filters Qdrant's local mode checks point by point in Python (most of a
        search's time); a server's index is searched by the server."""
        import bm25s
        import Stemmer

        self._client = client
        self.fusion = fusion or Fusion()
        self._vectors: dict[str, np.ndarray] = {}
        self._vectors_lock = threading.Lock()
        payloads = sorted(indexed_payloads(client).values(), key=lambda p: p["product_id"])
        if not payloads:
            raise SearchError("the search index is empty: run `lakehouse search-index refresh`")
        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self.catalogue = _Catalogue(
            ids=np.array([p["product_id"] for p in payloads], dtype=np.int64),
            payloads=payloads,
            category=np.array([p["category"] for p in payloads]),
            brand=np.array([p["brand"] for p in payloads]),
            price=np.array([np.nan if p["price"] is None else p["price"] for p in payloads]),
            in_stock=np.array([bool(p["in_stock"]) for p in payloads]),
            is_active=np.array([bool(p["is_active"]) for p in payloads]),
        )
        self.catalogue.by_id = {int(pid): i for i, pid in enumerate(self.catalogue.ids)}
        tokens = bm25s.tokenize(
            [p["document"] for p in payloads],
            stopwords="en",
            stemmer=self._stemmer,
            show_progress=False,
        )
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)
        self._matrix = self._unit_vectors() if vectors_in_memory else None

    def _unit_vectors(self) -> np.ndarray:
        """The catalogue's vectors, one row per product in :attr:`catalogue` order, scaled
        to length 1 (a dot product is then Qdrant's cosine)."""
        ids = [int(pid) for pid in self.catalogue.ids]
        points = self._client.retrieve(COLLECTION, ids, with_vectors=[VECTOR], with_payload=False)
        by_id = {int(p.id): p.vector[VECTOR] for p in points if isinstance(p.vector, dict)}
        matrix = np.array([by_id[pid] for pid in ids], dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms > 0, norms, 1.0)

    def _query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, remembered for the last :data:`QUERY_CACHE` distinct
        queries: shoppers repeat queries a lot, and embedding one costs milliseconds
        (most of a search), looking it up microseconds."""
        found = self._vectors.get(query)
        if found is None:
            found = embedder().encode([query])[0]
            with self._vectors_lock:  # the API searches from several threads
                if len(self._vectors) >= QUERY_CACHE:
                    self._vectors.pop(next(iter(self._vectors)))  # the oldest first
                self._vectors[query] = found
        return found

    def forget_queries(self) -> None:
        """Empty the query embeddings remembered so far: the next search of any query
        embeds it again (a benchmark times every mode on queries it meets first)."""
        with self._vectors_lock:
            self._vectors.clear()

    @property
    def categories(self) -> list[str]:
        return sorted(set(self.catalogue.category))

    @property
    def brands(self) -> list[str]:
        return sorted(set(self.catalogue.brand))

    def search(
        self, query: str, top: int = 10, filters: Filters | None = None, mode: Mode = "hybrid"
    ) -> list[Hit]:
        """The ``top`` products for ``query`` that pass ``filters``, best first."""
        filters = filters or Filters()
        query = " ".join(query.split())
        if not query:
            raise SearchError("the query is empty: say what you are looking for")
        if not 1 <= top <= MAX_TOP:
            raise SearchError(f"top must be between 1 and {MAX_TOP}")
        if mode not in MODES:
            raise SearchError(f"unknown search mode {mode!r}: one of {', '.join(MODES)}")
        categories = self._known(filters.categories, self.categories, "category")
        brands = self._known(filters.brands, self.brands, "brand")
        depth = max(MIN_DEPTH, 10 * top)
        lexical: list[tuple[int, float]] = []
        semantic: list[tuple[int, float]] = []
        if mode in ("bm25", "hybrid"):
            lexical = self._bm25_ranking(query, filters, categories, brands, depth)
        if mode in ("dense", "hybrid"):
            semantic = self._dense_ranking(query, filters, categories, brands, depth)
        if mode == "hybrid":
            scores = fuse(lexical, semantic, self.fusion)
        else:
            scores = dict(lexical or semantic)
        best = sorted(scores, key=lambda pid: (-scores[pid], pid))[:top]
        return [self._hit(pid, scores[pid]) for pid in best]

    def _bm25_ranking(
        self,
        query: str,
        filters: Filters,
        categories: list[str],
        brands: list[str],
        depth: int,
    ) -> list[tuple[int, float]]:
        tokens = self._bm25s.tokenize(
            [query],
            stopwords="en",
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )[0]
        if not tokens:  # only stop words ("the", "a"): BM25 has nothing to match
            return []
        got = np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)
        got[~self._mask(filters, categories, brands)] = 0.0
        order = np.argsort(-got, kind="stable")[:depth]
        order = order[got[order] > 0]
        return [(int(self.catalogue.ids[i]), float(got[i])) for i in order]

    def _dense_ranking(
        self,
        query: str,
        filters: Filters,
        categories: list[str],
        brands: list[str],
        depth: int,
    ) -> list[tuple[int, float]]:
        vector = self._query_vector(query)
        if self._matrix is not None:
            unit = vector / (np.linalg.norm(vector) or 1.0)
            scores = self._matrix @ unit.astype(np.float32)
            mask = self._mask(filters, categories, brands)
            allowed = np.flatnonzero(mask)
            best = allowed[np.argsort(-scores[allowed], kind="stable")[:depth]]
            return [(int(self.catalogue.ids[i]), float(scores[i])) for i in best]
        found = self._client.query_points(
            COLLECTION,
            query=vector.tolist(),
            using=VECTOR,
            query_filter=self._qdrant_filter(filters, categories, brands),
            limit=depth,
            with_payload=False,
        ).points
        return [(int(point.id), float(point.score)) for point in found]

    def _mask(self, filters: Filters, categories: list[str], brands: list[str]) -> np.ndarray:
        c = self.catalogue
        mask = np.ones(len(c.ids), dtype=bool)
        if categories:
            mask &= np.isin(c.category, categories)
        if brands:
            mask &= np.isin(c.brand, brands)
        if filters.min_price is not None:
            mask &= c.price >= filters.min_price
        if filters.max_price is not None:
            mask &= c.price <= filters.max_price
        if filters.in_stock:
            mask &= c.in_stock
        if not filters.include_inactive:
            mask &= c.is_active
        return mask

    def _qdrant_filter(
        self, filters: Filters, categories: list[str], brands: list[str]
    ) -> models.Filter:
        from qdrant_client import models

        must: list[models.Condition] = []
        if categories:
            must.append(
                models.FieldCondition(key="category", match=models.MatchAny(any=categories))
            )
        if brands:
            must.append(models.FieldCondition(key="brand", match=models.MatchAny(any=brands)))
        if filters.min_price is not None or filters.max_price is not None:
            must.append(
                models.FieldCondition(
                    key="price", range=models.Range(gte=filters.min_price, lte=filters.max_price)
                )
            )
        if filters.in_stock:
            must.append(models.FieldCondition(key="in_stock", match=models.MatchValue(value=True)))
        if not filters.include_inactive:
            must.append(models.FieldCondition(key="is_active", match=models.MatchValue(value=True)))
        return models.Filter(must=must)

    @staticmethod
    def _known(values: Sequence[str], known: list[str], what: str) -> list[str]:
        """``values`` as the index spells them (case aside); an unknown one is an error that
        lists the known ones."""
        canonical = {k.lower(): k for k in known}
        wanted = [v.strip() for v in values if v.strip()]
        unknown = [v for v in wanted if v.lower() not in canonical]
        if unknown:
            raise SearchError(
                f"no {what} {', '.join(map(repr, unknown))} in the index; known: {', '.join(known)}"
            )
        return [canonical[v.lower()] for v in wanted]

    def _hit(self, pid: int, score: float) -> Hit:
        p = self.catalogue.payloads[self.catalogue.by_id[pid]]
        return Hit(
            product_id=pid,
            score=score,
            product_name=p["product_name"],
            category=p["category"],
            brand=p["brand"],
            price=p["price"],
            in_stock=bool(p["in_stock"]),
        )


@contextmanager
def searcher(settings: Settings, fusion: Fusion | None = None) -> Iterator[Searcher]:
    """A searcher on the settings' index, in a ``with`` block (local mode holds the index's
    folder until it closes)."""
    with open_store(settings) as client:
        yield Searcher(client, fusion)
