"""Extractive question answering over a private document corpus, with verbatim citations.

Example:
    >>> from qa import QA, Retriever
    >>> hits = Retriever.load("embeddings/").search("When do primary care trusts go live?", top_k=5)
    >>> answer = QA.load("embeddings/").ask("When do primary care trusts go live?")
    >>> answer.text
    'April 2000'
"""

from __future__ import annotations

import os

# The product runs offline: nothing may try the model hub by accident (a user's own setting wins).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from qa.stores.local import BuildStats, Index, IndexNotFoundError, StaleIndexError, build_index  # noqa: E402
from qa.retrieval.retriever import Retriever  # noqa: E402
from qa.types import Answer, Citation, Document, Hit, Passage  # noqa: E402

__all__ = [
    "QA",
    "Answer",
    "BuildStats",
    "Citation",
    "Document",
    "Hit",
    "Index",
    "IndexNotFoundError",
    "Passage",
    "Retriever",
    "StaleIndexError",
    "build_index",
]


def __getattr__(name: str):
    # The pipeline pulls in transformers; import it only when asked for.
    if name == "QA":
        from qa.answering.pipeline import QA

        return QA
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
