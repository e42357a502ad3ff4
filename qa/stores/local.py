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

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.embedding.encoder import DEFAULT_BACKEND, Encoder, load_encoder
from qa.errors import InvalidInput
from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import SUPPORTED_SUFFIXES, corpus_files, load_documents
from qa.jsonl import read_jsonl, write_jsonl
from qa.stores import folder
from qa.stores.base import (CorruptIndexError, IndexLockedError, IndexNotFoundError, IndexWriteError,
                            StaleIndexError, Store)
from qa.stores.checkpoint import Checkpoint, text_key
from qa.stores.folder import BM25_DIR, DENSE, DOCUMENTS, MANIFEST, PARTIAL, PASSAGES
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

__all__ = ["APPROX_THRESHOLD", "BuildStats", "CorruptIndexError", "Index", "IndexLockedError", "IndexNotFoundError",
           "IndexWriteError", "StaleIndexError", "Store", "build_index", "read_manifest"]

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: the data files beside the manifest
# Past this many passages exact search alone takes more than 7.5 ms a query on 2 cores (0.15 ms per
# 1,000 passages), most of the 10 ms a hybrid search may take, while HNSW (M=32, efSearch=128) finds
# 99.6% of the exact top 10 of real sentence embeddings in 0.5 ms (README, "Exact or approximate").
APPROX_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
EMBED_BATCH = 1024  # passages embedded (and checkpointed) at a time
# A file modified this soon before the build scanned it may change again within the same mtime
# tick unnoticed (git's "racily clean" entries): its mtime is not trusted, it is hashed on every check.
RACY_NS = 2_000_000_000
# Manifest fields that change with every build even when the index does not.
_VOLATILE = ("built_at", "package_version", "scanned_ns", "data")


@dataclass
class BuildStats:
    """What a build or update did."""

    documents: int = 0
    passages: int = 0
    embedded: int = 0  # passages that went through the encoder in this run
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    index_type: str = "flat"
    written: bool = True  # False when nothing had changed and the index was left as it was


UNREADABLE = "unreadable"  # the hash recorded for a file that could not be read (loading skipped it)


def hash_file(path: str | Path) -> str:
    """sha256 (16 hex digits) of a file's bytes, read in 1 MiB blocks; ``UNREADABLE`` when the file
    can't be read (no permission, gone): loading skipped it with a warning, the build goes on."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return UNREADABLE
    return digest.hexdigest()[:16]


def file_hashes(docs_dir: str | Path) -> dict[str, str]:
    """sha256 (16 hex digits) of every supported file under ``docs_dir``, keyed by relative path."""
    root = Path(docs_dir)
    return {p.relative_to(root).as_posix(): hash_file(p) for p in corpus_files(root)}


def _doc_file(doc: Document, root: Path) -> str:
    """The document's path relative to the corpus folder, symlinks not followed."""
    if doc.file:
        return doc.file
    return Path(os.path.relpath(os.path.abspath(doc.path), os.path.abspath(root))).as_posix()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa")
    except PackageNotFoundError:
        return "0+unknown"


def make_faiss_index(vectors: np.ndarray, approximate: bool | None = None):
    """An inner-product FAISS index over ``vectors``: exact, or HNSW past ``APPROX_THRESHOLD``."""
    import faiss

    n, dim = vectors.shape
    approximate = n > APPROX_THRESHOLD if approximate is None else approximate
    if approximate:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def bm25_tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, English-stopworded, Snowball-stemmed tokens (the same for passages and queries)."""
    return _bm25s().tokenize(
        list(texts), stopwords="en", stemmer=_english_stemmer(), return_ids=False, show_progress=False
    )


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


def make_bm25(passages: Sequence[Passage]):
    bm25 = _bm25s().BM25()
    bm25.index(bm25_tokenize([p.text for p in passages]), show_progress=False)
    return bm25


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
            for row in read_jsonl(data / DOCUMENTS):
                doc = Document(id=row["id"], title=row["title"], path=row["path"], text=row["text"],
                               pages=tuple(tuple(p) for p in row.get("pages", ())),
                               file=row.get("file", ""), source_hash=row.get("source_hash", ""))
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
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        try:
            bm25 = _bm25s().BM25.load(str(data / BM25_DIR), show_progress=False)
        except FileNotFoundError:
            raise damaged(BM25_DIR, "is missing") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise damaged(BM25_DIR, f"is malformed ({_first_line(err)})") from None
        if dense.ntotal != len(passages) or len(passages) != manifest.get("passages", len(passages)):
            raise damaged(f"{DENSE} and {PASSAGES}", f"are inconsistent ({dense.ntotal} vectors, "
                          f"{len(passages)} passages)")
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


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _current_data(path: Path) -> object:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return None


def _rebuild_command(path: Path, manifest: dict | None) -> str:
    docs = "DOCS"
    if manifest and isinstance(manifest.get("docs_dir"), str) and manifest["docs_dir"]:
        docs = _display(docs_dir_of(path, manifest))
    return f"qa index --docs {docs} --out {path}"


def _holds_documents(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file() for p in path.rglob("*"))


def read_manifest(path: str | Path) -> dict:
    """The manifest of the index at ``path`` (model, backend, chunking, documents, ...), checked.

    Raises:
        IndexNotFoundError: no index there.
        StaleIndexError: an index of a format this version does not read.
        CorruptIndexError: the manifest is not one of ours (not JSON, not an object, fields missing).
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        if _holds_documents(path) and not (path / folder.LOCK).exists():
            raise IndexNotFoundError(f"{path} holds documents, not an index: build an index of them in another "
                                     f"folder with: qa index --docs {path} --out INDEX_DIR (outside {path}).")
        raise IndexNotFoundError(f"No index at {path} (no {MANIFEST}). Build one with: qa index --docs DOCS --out {path}")
    rebuild = _rebuild_command(path, None)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} is not readable JSON "
                                f"({_first_line(err)}). Rebuild it with: {rebuild}") from None
    if not isinstance(manifest, dict):
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} holds a {type(manifest).__name__}, "
                                f"not an object. Rebuild it with: {rebuild}")
    rebuild = _rebuild_command(path, manifest)
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise StaleIndexError(f"The index at {path} has format {manifest.get('format_version')}, this version reads "
                              f"{', '.join(map(str, READABLE_FORMATS))}. Rebuild it with: {rebuild}")
    missing = [k for k in ("model", "chunking", "documents", "passages") if k not in manifest]
    rows = manifest.get("documents", []) + manifest.get("skipped", [])
    if missing or not isinstance(rows, list) or not all(isinstance(r, dict) and {"file", "hash"} <= r.keys()
                                                        for r in rows):
        why = f"lacks {', '.join(missing)}" if missing else "has malformed document entries"
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} {why}. Rebuild it with: {rebuild}")
    if not folder.data_name(manifest):
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} names no valid data folder "
                                f"({manifest.get('data')!r}). Rebuild it with: {rebuild}")
    return manifest


def backend_of(manifest_or_encoder) -> str:
    """The encoder backend of a manifest or an encoder; indexes and encoders that predate backends ran on torch."""
    if isinstance(manifest_or_encoder, dict):
        return manifest_or_encoder.get("backend", "torch")
    return getattr(manifest_or_encoder, "backend", "torch")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _relative_docs_dir(docs_dir: Path, out_dir: Path) -> str:
    """The documents' folder relative to the index folder, so a copied or cloned project still checks it."""
    return Path(os.path.relpath(docs_dir.resolve(), out_dir.resolve())).as_posix()


def docs_dir_of(index_dir: str | Path, manifest: dict) -> Path:
    """The documents' folder an index was built from, resolved against the index folder."""
    return (Path(index_dir) / manifest.get("docs_dir", "")).resolve()


def stale_reason(manifest: dict, index_dir: str | Path) -> str | None:
    """Why the recorded documents no longer match those on disk, or ``None`` when they do.

    A file whose size and mtime are those recorded (and were not racy) is taken as unchanged
    without reading it; any other is hashed, as git's index does.
    """
    docs_dir = docs_dir_of(index_dir, manifest)
    if not manifest.get("docs_dir") or not docs_dir.is_dir():
        return None  # the index travels without its documents: nothing to compare against
    recorded = {row["file"]: row for row in manifest["documents"] + manifest.get("skipped", [])}
    current = {p.relative_to(docs_dir).as_posix(): p for p in corpus_files(docs_dir)}
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    scanned = manifest.get("scanned_ns")
    changed = sorted(f for f in set(current) & set(recorded) if _differs(current[f], recorded[f], scanned))
    parts = [f"{len(x)} {what} ({', '.join(x[:3])}{', …' if len(x) > 3 else ''})"
             for x, what in ((added, "new"), (changed, "changed"), (removed, "removed")) if x]
    return "; ".join(parts) or None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _differs(path: Path, row: dict, scanned_ns: int | None) -> bool:
    st = _stat(path)
    if st is None:
        return row["hash"] != UNREADABLE
    size, mtime = row.get("size"), row.get("mtime_ns")
    if size is not None and st.st_size != size:
        return True
    trusted = mtime is not None and scanned_ns is not None and mtime < scanned_ns - RACY_NS
    if trusted and st.st_mtime_ns == mtime:
        return False
    return hash_file(path) != row["hash"]


def build_index(
    docs_dir: str | Path,
    out_dir: str | Path = "embeddings",
    model: str | None = None,
    chunk_config: ChunkConfig | None = None,
    encoder: Encoder | None = None,
    backend: str = DEFAULT_BACKEND,
    incremental: bool = True,
    approximate: bool | None = None,
    show_progress: bool = False,
    batch_size: int = EMBED_BATCH,
) -> BuildStats:
    """Build (or update) the index of ``docs_dir`` in ``out_dir``.

    ``out_dir`` must be missing, empty or an index of ours, and apart from ``docs_dir``: that is
    checked before anything else. One build at a time may write it. When it already holds an index
    of the same model and chunk settings and ``incremental`` is true, only new or changed documents
    are embedded; when nothing changed, nothing is written. Vectors are saved batch by batch, so a
    build that is killed resumes where it stopped.

    Args:
        docs_dir: folder of documents (searched recursively).
        out_dir: the index folder; the new index replaces the old in one atomic step.
        model: embedding model path or name; default all-MiniLM-L6-v2 from its package.
        chunk_config: passage size and overlap.
        encoder: an already-built encoder (tests pass a fake one); overrides ``model`` and ``backend``.
        backend: how the model runs (see :data:`qa.embedding.encoder.BACKENDS`); recorded in the manifest.
        incremental: reuse vectors of unchanged documents from an existing index.
        approximate: force HNSW (True) or exact (False); ``None`` chooses by size.
        show_progress: show a progress bar of the passages embedded.
        batch_size: passages embedded, and saved to the checkpoint, at a time.

    Returns:
        :class:`BuildStats` saying what was embedded, added, changed and removed.

    Raises:
        MissingPath: no folder at ``docs_dir``.
        UnsafeDestination: ``out_dir`` is a file, holds other files, or overlaps ``docs_dir``.
        IndexLockedError: another build is writing ``out_dir``.
        IndexWriteError: the index could not be written (disk full, read-only); the previous one is unchanged.
    """
    t0 = time.perf_counter()
    docs_dir, out_dir = Path(docs_dir), Path(out_dir)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    folder.check_destination(docs_dir, out_dir)
    chunk_config = chunk_config or ChunkConfig()
    with folder.Writer(out_dir) as writer:
        encoder = encoder or load_encoder(model, backend=backend)
        stats = _build(writer, docs_dir, encoder, chunk_config, incremental, approximate, show_progress, batch_size)
    stats.seconds = round(time.perf_counter() - t0, 2)
    logger.info("index %s: %d documents, %d passages (%d embedded%s) in %.1fs", out_dir, stats.documents,
                stats.passages, stats.embedded, "" if stats.written else ", unchanged", stats.seconds)
    return stats


def _build(writer: folder.Writer, docs_dir: Path, encoder: Encoder, chunk_config: ChunkConfig, incremental: bool,
           approximate: bool | None, show_progress: bool, batch_size: int) -> BuildStats:
    out_dir = writer.out_dir
    # Size and mtime are taken before the files are read: a write in between then reads as a change.
    scanned_ns = time.time_ns()
    listed = {p.relative_to(docs_dir).as_posix(): p for p in corpus_files(docs_dir)}
    stat = {rel: st for rel, st in ((rel, _stat(p)) for rel, p in listed.items()) if st is not None}
    docs = load_documents(docs_dir)

    def entry(rel: str, digest: str) -> dict:
        st = stat.get(rel)
        return {"file": rel, "hash": digest, **({"size": st.st_size, "mtime_ns": st.st_mtime_ns} if st else {})}

    files = {d.id: _doc_file(d, docs_dir) for d in docs}
    doc_rows = [{"id": d.id, **entry(files[d.id], d.source_hash or hash_file(d.path))} for d in docs]
    loaded = set(files.values())
    # Files load_documents skipped (empty, binary, undecodable): recorded so they don't read as new.
    skipped = [entry(rel, hash_file(p)) for rel, p in listed.items() if rel not in loaded]

    previous = _reusable(out_dir, encoder, chunk_config) if incremental else None
    old = {row["id"]: (row["file"], row["hash"]) for row in previous.manifest["documents"]} if previous else {}
    stats = BuildStats(documents=len(docs))
    reuse: dict[str, tuple[list[Passage], np.ndarray]] = {}
    if previous is not None:
        vectors = previous.dense.reconstruct_n(0, previous.dense.ntotal)
        by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(previous.passages):
            by_doc.setdefault(p.doc_id, []).append(i)
        for doc, row in zip(docs, doc_rows):
            if old.get(doc.id) == (row["file"], row["hash"]):
                rows = by_doc.get(doc.id, [])
                reuse[doc.id] = ([previous.passages[i] for i in rows], vectors[rows])
        stats.removed = sorted(set(old) - {d.id for d in docs})

    passages: list[Passage] = []
    blocks: list[np.ndarray | int] = []
    fresh: list[Passage] = []
    for doc in docs:
        if doc.id in reuse:
            old_passages, old_vectors = reuse[doc.id]
            passages.extend(old_passages)
            blocks.append(old_vectors)
            continue
        (stats.changed if doc.id in old else stats.added).append(doc.id)
        new = chunk_document(doc, chunk_config)
        passages.extend(new)
        fresh.extend(new)
        blocks.append(len(new))  # how many fresh vectors go here
    if not passages:
        raise InvalidInput(f"The documents in {docs_dir} produced no passages: add documents with text.")
    approximate = len(passages) > APPROX_THRESHOLD if approximate is None else approximate
    stats.passages, stats.index_type = len(passages), "hnsw" if approximate else "flat"
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": encoder.name,
        "backend": backend_of(encoder),
        "dimension": int(previous.manifest["dimension"]) if previous is not None and not fresh else None,
        "normalized": True,
        "metric": "inner_product",
        "index_type": stats.index_type,
        "chunking": asdict(chunk_config),
        "docs_dir": _relative_docs_dir(docs_dir, out_dir),
        "documents": doc_rows,
        "skipped": skipped,
        "corpus_hash": hashlib.sha256("".join(sorted(r["hash"] for r in doc_rows + skipped)).encode()).hexdigest()[:16],
        "passages": len(passages),
        "scanned_ns": scanned_ns,
        "package_version": _package_version(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if previous is not None and not fresh and _same(manifest, previous.manifest):
        stats.written = False
        logger.info("index %s: nothing changed, left as it is", out_dir)
        return stats

    checkpoint = Checkpoint(out_dir / PARTIAL, encoder.name, backend_of(encoder))
    fresh_vectors, stats.embedded = _embed(fresh, encoder, checkpoint, batch_size, show_progress)
    vectors = _assemble(blocks, fresh_vectors)
    manifest["dimension"] = int(vectors.shape[1])
    dense = make_faiss_index(vectors, approximate)
    _write(writer, manifest, passages, docs, dense, make_bm25(passages), had_previous=previous is not None)
    checkpoint.clear()
    return stats


def _same(manifest: dict, previous: dict) -> bool:
    """Whether two manifests describe the same index (build time and version aside)."""
    strip = lambda m: {k: v for k, v in m.items() if k not in _VOLATILE}  # noqa: E731
    return strip(manifest) == strip(previous)


def _embed(fresh: list[Passage], encoder: Encoder, checkpoint: Checkpoint, batch_size: int,
           show_progress: bool) -> tuple[np.ndarray | None, int]:
    """Vectors of ``fresh`` (in order) and how many went through the encoder: those an interrupted
    build saved are reused; the rest are embedded ``batch_size`` at a time, each batch saved."""
    if not fresh:
        return None, 0
    from tqdm.auto import tqdm

    saved = checkpoint.load()
    keys = [text_key(p.text) for p in fresh]
    missing = [i for i, key in enumerate(keys) if key not in saved]
    with tqdm(total=len(fresh), initial=len(fresh) - len(missing), unit="passage", desc="Embedding",
              disable=not show_progress) as bar:
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            block = np.asarray(encoder.encode_passages([fresh[i].text for i in batch], show_progress=False),
                               dtype=np.float32)
            checkpoint.save([keys[i] for i in batch], block)
            saved.update(zip((keys[i] for i in batch), block))
            bar.update(len(batch))
    return np.stack([saved[key] for key in keys]), len(missing)


def _assemble(blocks: list[np.ndarray | int], fresh: np.ndarray | None) -> np.ndarray:
    """Stack reused vector blocks and, for each count in ``blocks``, that many fresh vectors in order."""
    out, k = [], 0
    for block in blocks:
        if isinstance(block, int):
            block, k = fresh[k : k + block], k + block
        out.append(block)
    return np.ascontiguousarray(np.vstack(out), dtype=np.float32)


def _reusable(out_dir: Path, encoder: Encoder, chunk_config: ChunkConfig) -> Index | None:
    """The existing index if its vectors can be reused (same format, model, backend and chunking).

    A damaged index is rebuilt from scratch with a warning that names the damage.
    """
    if not (out_dir / MANIFEST).exists():
        return None
    try:
        previous = Index.load(out_dir, model=encoder.name, backend=backend_of(encoder), check_documents=False)
    except CorruptIndexError as err:
        logger.warning("rebuilding %s from scratch: %s", out_dir, err)
        return None
    except StaleIndexError as err:
        logger.info("rebuilding %s from scratch: %s", out_dir, err)
        return None
    if previous.manifest["chunking"] != asdict(chunk_config):
        logger.info("rebuilding %s from scratch: chunk settings changed", out_dir)
        return None
    return previous


def _document_row(doc: Document) -> dict:
    return {"id": doc.id, "title": doc.title, "path": doc.path, "file": doc.file, "source_hash": doc.source_hash,
            "text": doc.text, "pages": [list(p) for p in doc.pages]}


def _write(writer: folder.Writer, manifest: dict, passages: list[Passage], docs: list[Document], dense, bm25,
           had_previous: bool) -> None:
    """Write the data files into a new version folder and publish it (see :mod:`qa.stores.folder`)."""
    import faiss

    version = writer.new_version()
    try:
        write_jsonl(version / PASSAGES, (p.to_dict() for p in passages))
        folder.after_step("passages")
        write_jsonl(version / DOCUMENTS, (_document_row(d) for d in docs))
        folder.after_step("documents")
        # Serialised here and written by Python, so a full disk is an OSError like any other write.
        (version / DENSE).write_bytes(faiss.serialize_index(dense).tobytes())
        folder.after_step("dense")
        bm25.save(str(version / BM25_DIR), show_progress=False)
        folder.after_step("bm25")
        writer.publish(version, manifest)
    except OSError as err:
        if writer.current() == version.name:  # published; only the tidying after it failed
            logger.warning("index %s published, but tidying up after it failed: %s", writer.out_dir, err)
            return
        writer.discard(version)
        kept = "the previous index is unchanged" if had_previous or writer.current() else "no index was written"
        raise IndexWriteError(f"Could not write the index at {writer.out_dir}: {err.strerror or err}"
                              f"{f' ({err.filename})' if err.filename else ''}; {kept}.") from err
    except BaseException:
        writer.discard(version)
        raise
