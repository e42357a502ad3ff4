"""The local store: passages, FAISS and bm25s indexes in a folder (``embeddings/``), built,
updated and loaded here.

The folder describes itself (see :mod:`qa.stores.local.folder` for the layout and the atomic publish):

- ``manifest.json``: model, dimension, chunk settings, per document file its hash, size and mtime,
  package version, build time, FAISS index type, and the data folder it describes;
- ``passages.jsonl`` and ``documents.jsonl``: the passages and the documents' text (citations and
  the document viewer read it from here, so the index stands on its own);
- ``dense.faiss``: the FAISS inner-product index (exact below ``APPROX_THRESHOLD`` passages, HNSW above);
- ``bm25/``: the bm25s index over the same passages.

Built and updated by :mod:`qa.stores.local.build`, loaded and searched by :mod:`qa.stores.local.index`.

Example:
    >>> from qa import Index, build_index
    >>> stats = build_index("seeds", "embeddings")
    >>> Index.load("embeddings").keyword_search("primary care trusts", k=3)
    [(41, 7.2), (40, 5.1), (12, 3.3)]
"""

