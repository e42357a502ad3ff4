"""Extractive question answering over a private document corpus, with verbatim citations.

Example:
    >>> from qa import QA, Retriever
    >>> hits = Retriever.load("embeddings/").search("When do primary care trusts go live?", top_k=5)
    >>> answer = QA.load("embeddings/").ask("When do primary care trusts go live?")
    >>> answer.text
    'April 2000'
"""

from __future__ import annotations

from qa.stores.local import BuildStats, Index, IndexNotFoundError, StaleIndexError, build_index
from qa.retrieval.retriever import Retriever
from qa.types import Answer, Citation, Document, Hit, Passage

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
