"""The local store: passages, FAISS and bm25s indexes in a folder (``embeddings/``), built,
updated and loaded here.

The folder describes itself (see :mod:`qa.stores.folder` for the layout and the atomic publish):

- ``manifest.json``: model, dimension, chunk settings, per document file its hash, size and mtime,
  package version, build time, FAISS index type, and the data folder it describes;
- ``passages.jsonl`` and ``documents.jsonl``: the passages and the documents' text (citations and
  the document viewer read it from here, so the index stands on its own);
- ``dense.faiss``: the FAISS inner-product index (exact below ``APPROX_THRESHOLD`` passages, HNSW above);
- ``bm25/``: the bm25s index over the same passages.

Example:
    >>> from qa import build_index
    >>> stats = build_index("seeds", "embeddings")
    >>> Index.load("embeddings").keyword_search("primary care trusts", k=3)
    [(41, 7.2), (40, 5.1), (12, 3.3)]
"""

from __future__ import annotations

# The store is split by stage; this module keeps every name it always offered, so callers and
# monkeypatching tests of a name defined here keep working (patch a function where it is used:
# :mod:`qa.stores.build` for the build, :mod:`qa.stores.index` for loading and searching).
from qa.stores.base import (CorruptIndexError, IndexLockedError, IndexNotFoundError, IndexWriteError,  # noqa: F401
                            StaleIndexError, Store)
from qa.stores.build import EMBED_BATCH, BuildStats, build_index  # noqa: F401
from qa.stores.index import (APPROX_THRESHOLD, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, Index,  # noqa: F401
                             bm25_tokenize, make_bm25, make_faiss_index)
from qa.stores.manifest import (FORMAT_VERSION, RACY_NS, READABLE_FORMATS, UNREADABLE, backend_of,  # noqa: F401
                                docs_dir_of, file_hashes, hash_file, read_manifest, stale_reason)

__all__ = ["APPROX_THRESHOLD", "BuildStats", "CorruptIndexError", "Index", "IndexLockedError", "IndexNotFoundError",
           "IndexWriteError", "StaleIndexError", "Store", "build_index", "read_manifest"]


# The backend interface of :mod:`qa.stores.address` (a folder address opens the local store).
def open_store(address, model: str | None = None, backend: str | None = None, check_documents: bool = True) -> Index:
    """The local store at ``address.location`` (see :meth:`Index.load`)."""
    return Index.load(address.location, model=model, backend=backend, check_documents=check_documents)


def build_store(docs_dir, address, **options) -> BuildStats:
    """Build or update the local store at ``address.location`` (see :func:`build_index`)."""
    return build_index(docs_dir, address.location, **options)


def read_store_manifest(address) -> dict:
    """The manifest of the local store at ``address.location`` (see :func:`read_manifest`)."""
    return read_manifest(address.location)
