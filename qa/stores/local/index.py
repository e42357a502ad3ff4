"""The loaded local store: passages, documents, and the FAISS and bm25s indexes over them.

:class:`Index` loads a folder written by :func:`qa.stores.local.build.build_index`, after checking its
manifest (:func:`qa.stores.local.folder.read_manifest`), and answers the two searches of
:class:`~qa.stores.base.Store`. :func:`open_store` and :func:`read_store_manifest` are the local store's
side of :mod:`qa.stores.address`.

Example:
    >>> Index.load("embeddings").keyword_search("primary care trusts", k=3)
    [(41, 7.2), (40, 5.1), (12, 3.3)]
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.jsonl import read_jsonl
from qa.stores.base import CorruptIndexError, StaleIndexError
from qa.stores.local import folder
from qa.stores.local.folder import (BM25_DIR, DENSE, DOCUMENTS, MANIFEST, PASSAGES, _current_data, _first_line,
                                    _rebuild_command, read_manifest)
from qa.stores.manifest import backend_of, stale_reason
from qa.types import Document, Passage

# Past this many passages exact search alone takes most of a hybrid search's time, while HNSW finds nearly all of
# the exact top 10 in a fraction of it: python -m benchmarks.bench ann --squad FILE... (docs/performance.md).
APPROX_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# efSearch grows with the corpus (one per 1,000 passages past 128k, at most 1,024): a larger graph loses more of
# the exact top 10 at a fixed efSearch, and the extra search costs little beside BM25's on a corpus that large:
# python -m benchmarks.scale run --passages 1000000 (docs/performance.md).
HNSW_EF_SEARCH_MAX = 1024


def ef_search(passages: int) -> int:
    """The HNSW search breadth for an index of ``passages`` vectors (:data:`HNSW_EF_SEARCH` up to 128k)."""
    return max(HNSW_EF_SEARCH, min(HNSW_EF_SEARCH_MAX, passages // 1000))


def empty_faiss_index(dimension: int, passages: int, approximate: bool | None = None):
    """An empty inner-product FAISS index set up for ``passages`` vectors: exact, or HNSW past
    ``APPROX_THRESHOLD`` (its search breadth chosen for that many); vectors are added by the caller."""
    import faiss

    approximate = passages > APPROX_THRESHOLD if approximate is None else approximate
    if not approximate:
        return faiss.IndexFlatIP(dimension)
    index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = ef_search(passages)
    return index


def make_faiss_index(vectors: np.ndarray, approximate: bool | None = None):
    """An inner-product FAISS index over ``vectors``: exact, or HNSW past ``APPROX_THRESHOLD``."""
    n, dim = vectors.shape
    index = empty_faiss_index(dim, n, approximate)
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's default token pattern: words of two characters or more


def bm25_tokenize(texts: Sequence[str], stems: dict[str, str] | None = None) -> list[list[str]]:
    """Lower-cased, English-stopworded, Snowball-stemmed tokens (the same for passages and queries).

    The tokens ``bm25s.tokenize(texts, stopwords="en", stemmer=english)`` gives, computed without
    rebuilding its stop-word set per text, and stemming each distinct word once: ``stems`` caches
    word -> stem across calls (a build streaming many batches passes one dict).
    """
    stop, stem_words = _stopwords(), _english_stemmer().stemWords
    stems = {} if stems is None else stems
    words = [[w for w in _TOKEN.findall(text.lower()) if w not in stop] for text in texts]
    new = list({w: None for ws in words for w in ws if w not in stems})
    if new:
        stems.update(zip(new, stem_words(new)))
    return [[stems[w] for w in ws] for ws in words]


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.lru_cache(maxsize=1)
def _bm25s():
    """The bm25s module; it sets its logger to DEBUG on import, which we undo so the app's logging
    configuration decides (``qa -v`` shows its lines, plain ``qa`` does not)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


@functools.lru_cache(maxsize=1)
def _english_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class Bm25Builder:
    """A bm25s index built a batch of passages at a time: each passage is kept as its token ids
    (4 bytes a token), not its text, so memory holds no passage text while a corpus streams through.

    The index is the one bm25s builds from the same tokens (the scores of each passage and term are
    equal; only the numbering of terms differs).

    Example:
        >>> builder = Bm25Builder()
        >>> builder.add(["Hail is ice.", "Fog is a cloud."])
        >>> builder.build().scores["num_docs"]
        2
    """

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.ids: list[np.ndarray] = []
        self._stems: dict[str, str] = {}

    def add(self, texts: Sequence[str]) -> None:
        vocab = self.vocab
        for tokens in bm25_tokenize(texts, self._stems):
            self.ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32,
                                        count=len(tokens)))

    def build(self):
        bm25 = _bm25s().BM25()
        bm25.index((self.ids, self.vocab), show_progress=False)
        return bm25


def make_bm25(passages: Sequence[Passage]):
    builder = Bm25Builder()
    builder.add([p.text for p in passages])
    return builder.build()


@dataclass
class Index:
    """The local store (a :class:`~qa.stores.base.Store`): passages, documents, the FAISS and BM25
    indexes, and the manifest, loaded from a folder written by :func:`build_index`."""

    path: Path
    manifest: dict
    passages: list[Passage]
    documents: dict[str, Document]
    dense: object
    bm25: object
    _rows_of_doc: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | Path, model: str | None = None, check_documents: bool = True,
             backend: str | None = None) -> "Index":
        """Load a saved index, checking it is complete, of the right model, and up to date.

        Args:
            path: the folder written by :func:`build_index`.
            model: if given, the index must have been built with this embedding model.
            backend: if given, and with this encoder backend (see :data:`qa.embedding.encoder.BACKENDS`).
            check_documents: compare the document files recorded in the manifest with those on disk
                (only files whose size or mtime changed are read).

        Raises:
            IndexNotFoundError: no index at ``path``.
            StaleIndexError: another model, or the documents changed since the build.
            CorruptIndexError: a file of the index is missing or damaged.
        """
        path = Path(path)
        for attempt in range(3):
            manifest = read_manifest(path)
            try:
                return cls._load(path, manifest, model, check_documents, backend)
            except CorruptIndexError:
                # A build may have published a new version and removed this one while we read it.
                if attempt == 2 or _current_data(path) == manifest.get("data"):
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _load(cls, path: Path, manifest: dict, model: str | None, check_documents: bool,
              backend: str | None) -> "Index":
        import faiss

        rebuild = _rebuild_command(path, manifest)
        if model is not None and model != manifest["model"]:
            raise StaleIndexError(f"The index at {path} was built with model {manifest['model']!r}, not {model!r}. "
                                  f"Rebuild it with: {rebuild} --model {model}")
        built_with = backend_of(manifest)
        if backend is not None and backend != built_with:
            raise StaleIndexError(
                f"The index at {path} was built with the {built_with} encoder backend, not {backend}: their vectors "
                f"differ slightly. Rebuild it with: {rebuild} --backend {backend}"
            )
        if check_documents:
            problem = stale_reason(manifest, path)
            if problem:
                raise StaleIndexError(f"The index at {path} is out of date: {problem}. Update it with: {rebuild}")
        data = path / folder.data_name(manifest)

        def damaged(name: str, why: str) -> CorruptIndexError:
            return CorruptIndexError(f"The index at {path} is damaged: {name} {why}. Rebuild it with: {rebuild}")

        try:
            passages = [Passage(**row) for row in read_jsonl(data / PASSAGES)]
        except FileNotFoundError:
            raise damaged(PASSAGES, "is missing") from None
        except (ValueError, TypeError) as err:
            raise damaged(PASSAGES, f"is malformed ({_first_line(err)})") from None
        try:
            documents = {}
            # Indexes written before documents carried their file and hash have them in the manifest only.
            recorded = {r.get("id"): r for r in manifest["documents"]}
            for row in read_jsonl(data / DOCUMENTS):
                entry = recorded.get(row["id"], {})
                doc = Document(id=row["id"], title=row["title"], path=row["path"], text=row["text"],
                               pages=tuple(tuple(p) for p in row.get("pages", ())),
                               file=row.get("file") or entry.get("file", ""),
                               source_hash=row.get("source_hash") or entry.get("hash", ""))
                documents[doc.id] = doc
        except FileNotFoundError:
            raise damaged(DOCUMENTS, "is missing") from None
        except (ValueError, TypeError, KeyError) as err:
            raise damaged(DOCUMENTS, f"is malformed ({_first_line(err)})") from None
        if not (data / DENSE).is_file():
            raise damaged(DENSE, "is missing")
        try:
            dense = faiss.read_index(str(data / DENSE))
        except RuntimeError:
            raise damaged(DENSE, "is truncated or malformed") from None
        if isinstance(dense, faiss.IndexHNSW):
            dense.hnsw.efSearch = ef_search(dense.ntotal)
        try:
            bm25 = _bm25s().BM25.load(str(data / BM25_DIR), show_progress=False)
        except FileNotFoundError:
            raise damaged(BM25_DIR, "is missing") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise damaged(BM25_DIR, f"is malformed ({_first_line(err)})") from None
        if dense.ntotal != len(passages):
            raise damaged(f"{DENSE} and {PASSAGES}", f"are inconsistent ({dense.ntotal:,} vectors, "
                          f"{len(passages):,} passages)")
        if len(passages) != manifest.get("passages", len(passages)):
            raise damaged(PASSAGES, f"holds {len(passages):,} passages where {MANIFEST} says "
                          f"{manifest['passages']:,}")
        return cls(path, manifest, passages, documents, dense, bm25)

    def _rows(self, doc_ids: Sequence[str] | None) -> np.ndarray | None:
        """Sorted row numbers of the passages of ``doc_ids`` (``None``: all rows)."""
        if doc_ids is None:
            return None
        if not self._rows_of_doc:
            rows: dict[str, list[int]] = {}
            for i, p in enumerate(self.passages):
                rows.setdefault(p.doc_id, []).append(i)
            self._rows_of_doc.update({d: np.asarray(r, dtype=np.int64) for d, r in rows.items()})
        empty = np.empty(0, np.int64)
        return np.unique(np.concatenate([empty, *(self._rows_of_doc.get(d, empty) for d in doc_ids)]))

    def dense_search(self, query_vector: np.ndarray, k: int,
                     doc_ids: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows of highest inner product with ``query_vector``, best first, as ``(row, score)``."""
        import faiss

        rows = self._rows(doc_ids)
        k = min(k, self.dense.ntotal if rows is None else len(rows))
        if k <= 0:
            return []
        params = None
        if rows is not None:
            selector = faiss.IDSelectorBatch(rows)
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=self.dense.hnsw.efSearch)
                      if isinstance(self.dense, faiss.IndexHNSW) else faiss.SearchParameters(sel=selector))
        vector = np.ascontiguousarray(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))
        scores, ids = self.dense.search(vector, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def keyword_search(self, query_text: str, k: int,
                       doc_ids: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` best BM25 matches of ``query_text`` with a positive score, best first."""
        tokens = [t for t in bm25_tokenize([query_text])[0] if t in self.bm25.vocab_dict]
        if not tokens:
            return []
        rows = self._rows(doc_ids)
        n = len(self.passages)
        mask = None
        if rows is not None:
            mask = np.zeros(n, dtype=np.float32)
            mask[rows] = 1.0
        k = min(k, n if rows is None else len(rows))
        if k <= 0:
            return []
        ids, scores = self.bm25.retrieve([tokens], k=k, show_progress=False, weight_mask=mask)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]


# The backend interface of :mod:`qa.stores.address` (a folder address opens the local store).
def open_store(address, model: str | None = None, backend: str | None = None, check_documents: bool = True) -> Index:
    """The local store at ``address.location`` (see :meth:`Index.load`)."""
    return Index.load(address.location, model=model, backend=backend, check_documents=check_documents)


def read_store_manifest(address) -> dict:
    """The manifest of the local store at ``address.location`` (see :func:`read_manifest`)."""
    return read_manifest(address.location)
