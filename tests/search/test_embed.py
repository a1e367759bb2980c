"""The numpy embedder gives sentence-transformers' vectors (stored by
``make_reference_vectors.py``, run in a scratch environment with torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lakehouse.search.embed import DIMENSION, embedder

REFERENCE = Path(__file__).with_name("reference_vectors.npz")


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = np.load(REFERENCE)
    return [str(t) for t in data["texts"]], data["vectors"]


def test_vectors_equal_sentence_transformers(reference: tuple[list[str], np.ndarray]) -> None:
    texts, expected = reference
    got = embedder().encode(texts, batch_size=7)  # batches that mix long and short texts
    assert got.shape == expected.shape == (len(texts), DIMENSION)
    assert got.dtype == np.float32
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9999, texts[int(cosine.argmin())]
    assert np.abs(got - expected).max() < 1e-4


def test_a_text_is_embedded_alike_alone_and_in_a_batch(
    reference: tuple[list[str], np.ndarray],
) -> None:
    """Padding must not leak into a text's vector: alone (no padding) or beside the longest
    text (padded to 256 tokens), the vector is the same."""
    texts, _ = reference
    longest = max(texts, key=len)
    alone = embedder().encode(["wireless headphones for the gym"])
    batched = embedder().encode([longest, "wireless headphones for the gym"])[1:]
    assert np.abs(alone - batched).max() < 1e-5
    assert np.allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)


def test_truncation_at_256_tokens() -> None:
    """Words after the 254th (256 with [CLS] and [SEP]) do not change the vector."""
    head = " ".join(f"word{i}" for i in range(300))
    a, b = embedder().encode([head + " rocket", head + " banana"])
    assert np.abs(a - b).max() < 1e-6


def test_no_text_no_rows() -> None:
    assert embedder().encode([]).shape == (0, DIMENSION)
