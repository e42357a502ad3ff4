"""Stand-ins for the models: a deterministic keyword encoder and a reader that needs no weights."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.reading.reader import ReaderResult
from qa.types import Span

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEncoder:
    """A deterministic bag-of-words encoder: each lower-cased word is hashed (blake2b, stable across
    processes) into one of ``dimension`` buckets; the count vector is L2-normalised.

    Texts that share words get a positive inner product, texts that share none score 0, which makes
    dense results predictable. It records every text it encodes, so tests can check what a build
    re-embedded.

    Args:
        dimension: number of hash buckets (the embedding size).
        name: the model name written to the index manifest.
    """

    def __init__(self, dimension: int = 512, name: str = "fake-bow"):
        self.name = name
        self.dimension = dimension
        self.passages_encoded: list[str] = []
        self.queries_encoded: list[str] = []

    @property
    def passage_count(self) -> int:
        """How many passages went through :meth:`encode_passages` so far."""
        return len(self.passages_encoded)

    def reset(self) -> None:
        self.passages_encoded.clear()
        self.queries_encoded.clear()

    def bucket(self, word: str) -> int:
        digest = hashlib.blake2b(word.lower().encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "little") % (self.dimension - 1) + 1

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            if not words:
                out[row, 0] = 1.0  # bucket 0 is kept for texts without words, so every row is a unit vector
            for w in words:
                out[row, self.bucket(w)] += 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries_encoded.extend(texts)
        return self.embed(texts)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.passages_encoded.extend(texts)
        return self.embed(texts)


class GatedEncoder(FakeEncoder):
    """Blocks in encode_passages until released, so a test can act in the middle of a build."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def encode_passages(self, texts, show_progress=False):
        self.entered.set()
        assert self.release.wait(30), "the test never released the build"
        return super().encode_passages(texts, show_progress)


class FirstWordReader:
    """Answers with the first word of the first passage it is given (no model to load)."""

    def __init__(self, folder: Path):
        self.path = folder  # no calibration.json there: the pipeline's fallback threshold

    def read(self, question, passages):
        p = passages[0]
        word = p.text.split()[0]
        start = p.start + p.text.index(word)
        return ReaderResult([Span(word, 0.99, p.doc_id, start, start + len(word), p.id)], 0.0)
