"""Find the passages most likely to answer a question: dense, keyword (BM25), or both fused.

The retriever embeds the question, asks a :class:`~qa.stores.base.Store` for its nearest and its
best keyword matches, and fuses them by reciprocal rank; the store does the searching.

Example:
    >>> from qa import Retriever
    >>> retriever = Retriever.load("embeddings/")
    >>> hits = retriever.search("When do primary care trusts go live?", top_k=5)
    >>> hits[0].passage.doc_id
    '000_514f065cc880a116'
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.embedding.encoder import Encoder, load_encoder
from qa.errors import InvalidInput
from qa.retrieval import DEFAULT_MODE, MODES
from qa.stores.base import Store
from qa.stores.manifest import backend_of
from qa.types import Hit

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al. (2009), also the default of Elasticsearch and Haystack
CANDIDATES = 100  # passages each retriever contributes to the fusion


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids: score(d) = sum over lists of 1 / (k + rank of d), ranks from 1.

    Ties are broken by the id's best rank in any list, then by the id, so results are deterministic.
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
            best[doc] = min(best.get(doc, rank), rank)
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], item[0]))


class Retriever:
    """Searches a store (by default the local :class:`~qa.stores.local.index.Index`).

    Args:
        index: the loaded store.
        encoder: the query encoder; by default the model and backend recorded in the store's manifest.
    """

    def __init__(self, index: Store, encoder: Encoder | None = None):
        self.index = index
        self.encoder = encoder or load_encoder(index.manifest["model"], backend=backend_of(index.manifest))
        self._query_vectors: dict[str, np.ndarray] = {}  # small cache: ask() embeds a question once

    @classmethod
    def load(cls, path: str | Path = "embeddings", encoder: Encoder | None = None, check_documents: bool = True) -> "Retriever":
        """Load the store at ``path``: a folder, ``milvus:PATH.db`` or ``http://HOST:PORT`` (see
        :mod:`qa.stores.address`; :meth:`qa.stores.local.index.Index.load` lists the errors it raises)."""
        from qa.stores.address import open_store

        model, backend = (encoder.name, backend_of(encoder)) if encoder is not None else (None, None)
        return cls(open_store(path, model=model, check_documents=check_documents, backend=backend), encoder)

    @property
    def documents(self):
        return self.index.documents

    def search(
        self, query: str, top_k: int = 5, mode: str = DEFAULT_MODE, doc_ids: list[str] | None = None
    ) -> list[Hit]:
        """The ``top_k`` best passages for ``query``, best first.

        Args:
            query: the question (cut where it entered: :func:`qa.answering.question.check_question`).
            top_k: how many passages to return (fewer if the index holds fewer).
            mode: ``"dense"``, ``"bm25"`` or ``"hybrid"`` (reciprocal rank fusion of both).
            doc_ids: search only these documents (a list of ids).

        Raises:
            InvalidInput: empty query, ``top_k < 1``, unknown mode, ``doc_ids`` not a list, or an unknown id.
        """
        return self._search(self._check(query, top_k, mode, doc_ids), top_k, mode, doc_ids)[0]

    def search_with_relevance(
        self, query: str, top_k: int = 5, mode: str = DEFAULT_MODE, doc_ids: list[str] | None = None
    ) -> tuple[list[Hit], float]:
        """:meth:`search` and :meth:`relevance` together: the dense list the search ranked already
        starts with the nearest passage, so it is searched once (BM25 mode adds one dense lookup).
        With ``doc_ids``, both are within those documents."""
        query = self._check(query, top_k, mode, doc_ids)
        hits, dense = self._search(query, top_k, mode, doc_ids)
        if not dense:
            dense = self._dense(query, 1, doc_ids)
        return hits, dense[0][1] if dense else 0.0

    def _search(self, query: str, top_k: int, mode: str,
                doc_ids: list[str] | None) -> tuple[list[Hit], list[tuple[int, float]]]:
        """The hits of a checked query, and the dense list they came from (empty for BM25)."""
        pool = max(top_k, CANDIDATES) if mode == "hybrid" else top_k
        if mode == "dense":
            dense = self._dense(query, pool, doc_ids)[:top_k]
            return self._hits(dense, dense=dense), dense
        if mode == "bm25":
            sparse = self.index.keyword_search(query, pool, doc_ids)[:top_k]
            return self._hits(sparse, sparse=sparse), []
        dense = self._dense(query, pool, doc_ids)
        sparse = self.index.keyword_search(query, pool, doc_ids)
        fused = reciprocal_rank_fusion([[i for i, _ in dense], [i for i, _ in sparse]])
        return self._hits(fused[:top_k], dense=dense, sparse=sparse), dense

    def _check(self, query: str, top_k: int, mode: str, doc_ids: list[str] | None) -> str:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("The query is empty: ask a question in words.")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise InvalidInput(f"top_k must be a whole number of at least 1, got {top_k!r}.")
        if mode not in MODES:
            raise InvalidInput(f"Unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}.")
        if doc_ids is not None:
            if not isinstance(doc_ids, (list, tuple)) or not all(isinstance(d, str) for d in doc_ids):
                raise InvalidInput(f"doc_ids must be a list of document ids, e.g. [{next(iter(self.index.documents))!r}]"
                                   f", not {type(doc_ids).__name__} {doc_ids!r:.80}.")
            unknown = sorted({d for d in doc_ids if d not in self.index.documents})  # no scan of a server's ids
            if unknown or not doc_ids:
                raise InvalidInput(f"Unknown document id(s) {unknown or doc_ids}: the index holds "
                                   f"{len(self.index.documents)} documents, e.g. {next(iter(self.index.documents))!r}.")
        return query.strip()

    def relevance(self, query: str) -> float:
        """Cosine similarity of ``query`` with its nearest passage: how on-topic the question is."""
        query = self._check(query, 1, "dense", None)
        best = self._dense(query, 1, None)
        return best[0][1] if best else 0.0

    def _embed(self, query: str) -> np.ndarray:
        vector = self._query_vectors.get(query)
        if vector is None:
            vector = np.asarray(self.encoder.encode_queries([query]), dtype=np.float32)[0]
            if len(self._query_vectors) >= 256:
                self._query_vectors.clear()
            self._query_vectors[query] = vector
        return vector

    def _dense(self, query: str, k: int, doc_ids: Sequence[str] | None) -> list[tuple[int, float]]:
        return self.index.dense_search(self._embed(query), k, doc_ids)

    def _hits(self, ranked: list[tuple[int, float]], dense: list[tuple[int, float]] = (),
              sparse: list[tuple[int, float]] = ()) -> list[Hit]:
        """Hits in ``ranked`` order, each with its rank in the dense and BM25 lists it came from."""
        dense_rank = {i: r for r, (i, _) in enumerate(dense, start=1)}
        keyword_rank = {i: r for r, (i, _) in enumerate(sparse, start=1)}
        return [Hit(self.index.passages[i], score, rank, dense_rank.get(i), keyword_rank.get(i))
                for rank, (i, score) in enumerate(ranked, start=1)]
