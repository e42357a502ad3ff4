"""What retrieval needs from a store of passages, and the errors every store raises.

A store holds the passages (rows numbered from 0), their documents and vectors, and answers two
searches; the retriever embeds the question, asks both and fuses them. The local FAISS + bm25s store
(:class:`qa.stores.local.index.Index`) is one; a server-backed one implements the same protocol.

Example:
    >>> store = Index.load("embeddings")
    >>> store.dense_search(encoder.encode_queries(["flu jab"])[0], k=5)
    [(12, 0.61), (40, 0.58), ...]
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from qa.errors import UserError
from qa.types import Document, Passage


@runtime_checkable
class Store(Protocol):
    """Passages, documents and the two searches over them.

    Attributes:
        manifest: how the store was built (``model`` and ``backend`` name the query encoder).
        passages: every passage, looked up by the rows the searches return (the local store numbers
            them from 0; Milvus uses its primary keys, so iterate it rather than ``range(len(...))``).
        documents: the documents by id (citations and the document viewer read their text).
    """

    manifest: dict
    passages: Sequence[Passage]
    documents: Mapping[str, Document]

    def dense_search(
        self, query_vector: np.ndarray, k: int, doc_ids: Sequence[str] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` rows nearest to ``query_vector`` (inner product), best first, as ``(row, score)``;
        only rows of ``doc_ids`` when given."""
        ...

    def keyword_search(
        self, query_text: str, k: int, doc_ids: Sequence[str] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best keyword (BM25) matches of ``query_text`` with a positive score, best first."""
        ...


class IndexNotFoundError(UserError, FileNotFoundError):
    """No index was built at the given folder."""


class StaleIndexError(UserError, ValueError):
    """The saved index no longer matches the requested model or the documents on disk."""


class CorruptIndexError(StaleIndexError):
    """A file of the saved index is missing, truncated or malformed: rebuilding it fixes that."""


class IndexLockedError(UserError, RuntimeError):
    """Another build is writing the same index folder."""


class IndexWriteError(UserError, OSError):
    """The index could not be written (disk full, read-only place); the previous one is unchanged."""


class StoreUnavailableError(UserError, ConnectionError):
    """A server store cannot be reached, refuses the token, or is held by another process."""
