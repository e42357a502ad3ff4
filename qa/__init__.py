"""Extractive question answering over a private document corpus, with verbatim citations.

Example:
    >>> from qa import QA, Retriever
    >>> hits = Retriever.load("embeddings/").search("When do primary care trusts go live?", top_k=5)
    >>> answer = QA.load("embeddings/").ask("When do primary care trusts go live?")
    >>> answer.text
    'April 2000'

The names load on first use (``from qa import QA`` imports the pipeline then), so ``import qa`` and
commands that need little of it (``qa ask --server``, ``qa --help``) stay fast.
"""

from __future__ import annotations

import importlib

# Each public name and the module it comes from.
_SOURCES = {
    "QA": "qa.answering.pipeline",
    "Answer": "qa.types",
    "BuildStats": "qa.stores.jobs",
    "Citation": "qa.types",
    "Document": "qa.types",
    "Hit": "qa.types",
    "Index": "qa.stores.local.index",
    "IndexNotFoundError": "qa.stores.base",
    "Passage": "qa.types",
    "Retriever": "qa.retrieval.retriever",
    "StaleIndexError": "qa.stores.base",
    "build_index": "qa.stores.local.build",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(_SOURCES[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
