"""The search index: one Qdrant point per product, kept in step with the catalogue.

A point's id is the ``product_id``; its vector embeds :func:`~lakehouse.search.catalog.
document`; its payload holds the product's fields (:data:`~lakehouse.search.catalog.SCHEMA`:
the filters and what a result shows), the product's ``version`` and the ``content_hash`` of
its text. :func:`refresh` compares the catalogue with the payloads: a product whose text
changed is embedded again, one whose other fields changed (price, stock, version) gets its
payload rewritten, one no longer in the catalogue is deleted. So a refresh costs in
proportion to what changed, not to the catalogue.

The store is Qdrant's embedded local mode under ``<data_dir>/search/qdrant`` (one process at
a time holds it), or a Qdrant server when ``search_qdrant_url`` is set: the same client
calls either way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.exceptions import SearchError
from lakehouse.search.catalog import (
    PAYLOAD_FIELDS,
    conform,
    content_hash,
    document,
    published_products,
)
from lakehouse.search.embed import DIMENSION, embedder

if TYPE_CHECKING:
    import pandas as pd
    from qdrant_client import QdrantClient

    from lakehouse.progress import Progress
    from lakehouse.settings import Settings

COLLECTION = "products"
VECTOR = "text"
UPSERT_BATCH = 256


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did, by product: ``embedded`` counts the texts embedded (the added
    products and the updated ones whose text changed)."""

    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        return self.added + self.updated + self.unchanged

    def summary(self) -> str:
        return (
            f"search index: {self.indexed:,} products ({self.added:,} added, "
            f"{self.updated:,} updated, {self.removed:,} removed, {self.unchanged:,} "
            f"unchanged; {self.embedded:,} embedded) in {self.seconds:.2f} s"
        )

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self) | {"indexed": self.indexed, "seconds": round(self.seconds, 3)}


@contextmanager
def open_store(settings: Settings) -> Iterator[QdrantClient]:
    """A Qdrant client on the settings' store: the server of ``search_qdrant_url``, or the
    local-mode folder ``<data_dir>/search/qdrant``. Use it in a ``with`` block: local mode
    holds its folder until the client closes."""
    # qdrant-client loads grpc and pydantic models: a second, only where the index is used
    from qdrant_client import QdrantClient

    try:
        if settings.search_qdrant_url:
            key = settings.search_qdrant_api_key
            client = QdrantClient(
                url=settings.search_qdrant_url,
                api_key=key.get_secret_value() if key is not None else None,
            )
        else:
            path = settings.search_dir / "qdrant"
            path.mkdir(parents=True, exist_ok=True)
            client = QdrantClient(path=str(path))
    except RuntimeError as exc:  # local mode: another process holds the folder
        raise SearchError(f"the search index is in use by another process: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def ensure_collection(client: QdrantClient) -> None:
    from qdrant_client import models

    if not client.collection_exists(COLLECTION):
        client.create_collection(
            COLLECTION,
            vectors_config={
                VECTOR: models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE)
            },
        )


def indexed_payloads(client: QdrantClient) -> dict[int, dict[str, Any]]:
    """Every point's payload by product id (no vectors)."""
    found: dict[int, dict[str, Any]] = {}
    if not client.collection_exists(COLLECTION):
        return found
    offset = None
    while True:
        points, offset = client.scroll(COLLECTION, limit=1024, offset=offset, with_payload=True)
        for point in points:
            found[int(point.id)] = dict(point.payload or {})
        if offset is None:
            return found


def in_memory_copy(settings: Settings) -> QdrantClient:
    """The index copied whole (vectors and payloads) into an in-memory Qdrant client, the
    store closed again: a long-running reader (the API) serves from the copy, and local
    mode's folder stays free for the refresh after each publication."""
    from qdrant_client import QdrantClient, models

    copy = QdrantClient(":memory:")
    ensure_collection(copy)
    with open_store(settings) as client:
        if not client.collection_exists(COLLECTION):
            return copy
        offset = None
        while True:
            points, offset = client.scroll(
                COLLECTION, limit=1024, offset=offset, with_payload=True, with_vectors=True
            )
            if points:
                copy.upsert(
                    COLLECTION,
                    [
                        models.PointStruct(
                            id=p.id, vector={VECTOR: p.vector[VECTOR]}, payload=p.payload
                        )
                        for p in points
                        if isinstance(p.vector, dict)
                    ],
                )
            if offset is None:
                return copy


def signature(settings: Settings) -> str:
    """What changes when the index does: on local mode the newest write under its folder
    (no need to open it), on a server the points' versions and text hashes."""
    if not settings.search_qdrant_url:
        folder = settings.search_dir / "qdrant"
        stamps = [f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()]
        return f"local:{max(stamps, default=0)}:{len(stamps)}"
    with open_store(settings) as client:
        payloads = indexed_payloads(client)
    parts = sorted((pid, p.get("version"), p.get("content_hash")) for pid, p in payloads.items())
    return f"server:{hash(tuple(parts))}"


def refresh(
    settings: Settings,
    products: pa.Table | pd.DataFrame,
    progress: Progress | None = None,
) -> RefreshReport:
    """Make the index hold exactly ``products`` (the catalogue's current versions, columns
    of :data:`~lakehouse.search.catalog.SCHEMA`), embedding only the texts it lacks."""
    from qdrant_client import models

    started = time.perf_counter()
    rows = conform(products).to_pylist()
    with open_store(settings) as client:
        ensure_collection(client)
        before = indexed_payloads(client)
        wanted: dict[int, dict[str, Any]] = {}
        to_embed: list[int] = []
        to_rewrite: list[int] = []
        for row in rows:
            text = document(row)
            payload = {name: row[name] for name in PAYLOAD_FIELDS} | {
                "document": text,
                "content_hash": content_hash(text),
            }
            pid = int(row["product_id"])
            wanted[pid] = payload
            old = before.get(pid)
            if old is None or old.get("content_hash") != payload["content_hash"]:
                to_embed.append(pid)
            elif old != payload:
                to_rewrite.append(pid)
        gone = sorted(set(before) - set(wanted))
        _upsert(client, [wanted[pid] for pid in to_embed], progress)
        for pid in to_rewrite:
            client.overwrite_payload(COLLECTION, payload=wanted[pid], points=[pid])
        if gone:
            client.delete(COLLECTION, points_selector=models.PointIdsList(points=list(gone)))
    added = sum(1 for pid in to_embed if pid not in before)
    updated = len(to_embed) - added + len(to_rewrite)
    return RefreshReport(
        added=added,
        updated=updated,
        removed=len(gone),
        unchanged=len(wanted) - added - updated,
        embedded=len(to_embed),
        seconds=time.perf_counter() - started,
    )


def refresh_published(settings: Settings, progress: Progress | None = None) -> RefreshReport:
    """Make the index hold the published catalogue: what the pipeline runs after each
    publication (``flows/transform.py``, ``lakehouse build``) and ``lakehouse
    search-index refresh`` runs by hand. Reading the marts is timed with the refresh."""
    started = time.perf_counter()
    task = progress.add_task("search index: products compared", total=None) if progress else None
    products = published_products(settings)
    if progress is not None and task is not None:
        progress.update(task, total=products.num_rows)
    report = refresh(settings, products, progress)
    if progress is not None and task is not None:
        progress.update(task, completed=products.num_rows)
    return replace(report, seconds=time.perf_counter() - started)


def _upsert(
    client: QdrantClient, payloads: list[dict[str, Any]], progress: Progress | None
) -> None:
    from qdrant_client import models

    if not payloads:
        return
    model = embedder()
    task = progress.add_task("embedding products", total=len(payloads)) if progress else None
    for start in range(0, len(payloads), UPSERT_BATCH):
        batch = payloads[start : start + UPSERT_BATCH]
        vectors = model.encode([p["document"] for p in batch])
        client.upsert(
            COLLECTION,
            points=[
                models.PointStruct(id=p["product_id"], vector={VECTOR: v.tolist()}, payload=p)
                for p, v in zip(batch, vectors, strict=True)
            ],
        )
        if progress is not None and task is not None:
            progress.advance(task, len(batch))
