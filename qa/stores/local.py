"""Build, save, load and incrementally update the passage index in ``embeddings/``.

The folder describes itself:

- ``manifest.json``: model, dimension, chunk settings, a hash per document file, package version,
  build time, FAISS index type;
- ``passages.jsonl`` and ``documents.jsonl``: the passages and the documents' text (citations and
  the document viewer read it from here, so the index stands on its own);
- ``dense.faiss``: the FAISS inner-product index (exact below ``APPROX_THRESHOLD`` passages, HNSW above);
- ``bm25/``: the bm25s index over the same passages.

Writes are atomic: everything goes into a temporary folder that is renamed into place only when
complete, so an interrupted build never leaves a half index that loads.

Example:
    >>> from qa import build_index
    >>> stats = build_index("seeds", "embeddings")
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import corpus_files, load_documents
from qa.embedding.encoder import DEFAULT_BACKEND, Encoder, load_encoder
from qa.errors import UserError
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
DOCUMENTS = "documents.jsonl"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
# Past this many passages exact search alone takes more than 7.5 ms a query on 2 cores (0.15 ms per
# 1,000 passages), most of the 10 ms a hybrid search may take, while HNSW (M=32, efSearch=128) finds
# 99.6% of the exact top 10 of real sentence embeddings in 0.5 ms (README, "Exact or approximate").
APPROX_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


class IndexNotFoundError(UserError, FileNotFoundError):
    """No index was built at the given folder."""


class StaleIndexError(UserError, ValueError):
    """The saved index no longer matches the requested model or the documents on disk."""


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


def file_hashes(docs_dir: str | Path) -> dict[str, str]:
    """sha256 (16 hex digits) of every supported file under ``docs_dir``, keyed by relative path."""
    root = Path(docs_dir)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in corpus_files(root)}


def _doc_file(doc: Document, root: Path) -> str:
    return Path(doc.path).resolve().relative_to(root.resolve()).as_posix()


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
    """A loaded index: passages, documents, the FAISS and BM25 indexes, and the manifest."""

    path: Path
    manifest: dict
    passages: list[Passage]
    documents: dict[str, Document]
    dense: object
    bm25: object

    @classmethod
    def load(cls, path: str | Path, model: str | None = None, check_documents: bool = True,
             backend: str | None = None) -> "Index":
        """Load a saved index, checking it is complete, of the right model, and up to date.

        Args:
            path: the folder written by :func:`build_index`.
            model: if given, the index must have been built with this embedding model.
            backend: if given, and with this encoder backend (see :data:`qa.embedding.encoder.BACKENDS`).
            check_documents: compare the document files recorded in the manifest with those on disk.

        Raises:
            IndexNotFoundError: no complete index at ``path``.
            StaleIndexError: another model, or the documents changed since the build.
        """
        import faiss

        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise IndexNotFoundError(
                f"No index at {path} (no {MANIFEST}). Build one with: qa index --docs DOCS --out {path}"
            )
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        docs_hint = _display(docs_dir_of(path, manifest)) if manifest.get("docs_dir") else "DOCS"
        if manifest.get("format_version") != FORMAT_VERSION:
            raise StaleIndexError(
                f"The index at {path} has format {manifest.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}. Rebuild it with: qa index --docs {docs_hint} --out {path}"
            )
        if model is not None and model != manifest["model"]:
            raise StaleIndexError(
                f"The index at {path} was built with model {manifest['model']!r}, not {model!r}. Rebuild it with: "
                f"qa index --docs {docs_hint} --out {path} --model {model}"
            )
        built_with = backend_of(manifest)
        if backend is not None and backend != built_with:
            raise StaleIndexError(
                f"The index at {path} was built with the {built_with} encoder backend, not {backend}: their vectors "
                f"differ slightly. Rebuild it with: qa index --docs {docs_hint} --out {path} --backend {backend}"
            )
        if check_documents:
            problem = stale_reason(manifest, path)
            if problem:
                raise StaleIndexError(
                    f"The index at {path} is out of date: {problem}. Update it with: "
                    f"qa index --docs {docs_hint} --out {path}"
                )
        passages = [Passage(**json.loads(line)) for line in _lines(path / PASSAGES)]
        documents = {}
        for line in _lines(path / DOCUMENTS):
            row = json.loads(line)
            row.pop("file", None)
            row["pages"] = tuple(tuple(p) for p in row.get("pages", ()))
            documents[row["id"]] = Document(**row)
        dense = faiss.read_index(str(path / DENSE))
        if isinstance(dense, faiss.IndexHNSW):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        bm25 = _bm25s().BM25.load(str(path / BM25_DIR), show_progress=False)
        if dense.ntotal != len(passages):
            raise StaleIndexError(f"The index at {path} is inconsistent ({dense.ntotal} vectors, {len(passages)} passages); rebuild it.")
        return cls(path, manifest, passages, documents, dense, bm25)


def read_manifest(path: str | Path) -> dict:
    """The manifest of the index at ``path`` (model, backend, chunking, documents, ...).

    Raises:
        IndexNotFoundError: no index there.
    """
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise IndexNotFoundError(f"No index at {path} (no {MANIFEST}). Build one with: qa index --docs DOCS --out {path}")
    return json.loads(manifest_path.read_text(encoding="utf-8"))


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


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _relative_docs_dir(docs_dir: Path, out_dir: Path) -> str:
    """The documents' folder relative to the index folder, so a copied or cloned project still checks it."""
    import os

    return Path(os.path.relpath(docs_dir.resolve(), out_dir.resolve())).as_posix()


def docs_dir_of(index_dir: str | Path, manifest: dict) -> Path:
    """The documents' folder an index was built from, resolved against the index folder."""
    return (Path(index_dir) / manifest.get("docs_dir", "")).resolve()


def stale_reason(manifest: dict, index_dir: str | Path) -> str | None:
    """Why the recorded documents no longer match those on disk, or ``None`` when they do."""
    docs_dir = docs_dir_of(index_dir, manifest)
    if not manifest.get("docs_dir") or not docs_dir.is_dir():
        return None  # the index travels without its documents: nothing to compare against
    recorded = {row["file"]: row["hash"] for row in manifest["documents"] + manifest.get("skipped", [])}
    current = file_hashes(docs_dir)
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    changed = sorted(f for f in set(current) & set(recorded) if current[f] != recorded[f])
    parts = [f"{len(x)} {what} ({', '.join(x[:3])}{', …' if len(x) > 3 else ''})"
             for x, what in ((added, "new"), (changed, "changed"), (removed, "removed")) if x]
    return "; ".join(parts) or None


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
) -> BuildStats:
    """Build (or update) the index of ``docs_dir`` in ``out_dir``.

    When ``out_dir`` already holds an index of the same model and chunk settings and ``incremental``
    is true, only new or changed documents are embedded; removed documents are dropped.

    Args:
        docs_dir: folder of documents (searched recursively).
        out_dir: where the index is written (atomically).
        model: embedding model path or name; default all-MiniLM-L6-v2 from its package.
        chunk_config: passage size and overlap.
        encoder: an already-built encoder (tests pass a fake one); overrides ``model`` and ``backend``.
        backend: how the model runs (see :data:`qa.embedding.encoder.BACKENDS`); recorded in the manifest.
        incremental: reuse vectors of unchanged documents from an existing index.
        approximate: force HNSW (True) or exact (False); ``None`` chooses by size.
        show_progress: show progress bars.

    Returns:
        :class:`BuildStats` saying what was embedded, added, changed and removed.
    """
    t0 = time.perf_counter()
    docs_dir, out_dir = Path(docs_dir), Path(out_dir)
    chunk_config = chunk_config or ChunkConfig()
    encoder = encoder or load_encoder(model, backend=backend)
    docs = load_documents(docs_dir)
    hashes = file_hashes(docs_dir)

    previous = _reusable(out_dir, encoder, chunk_config) if incremental else None
    old_hash = {row["id"]: row["hash"] for row in previous.manifest["documents"]} if previous else {}
    stats = BuildStats(documents=len(docs))
    reuse: dict[str, tuple[list[Passage], np.ndarray]] = {}
    if previous is not None:
        vectors = previous.dense.reconstruct_n(0, previous.dense.ntotal)
        by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(previous.passages):
            by_doc.setdefault(p.doc_id, []).append(i)
        for doc in docs:
            if old_hash.get(doc.id) == hashes.get(_doc_file(doc, docs_dir)):
                rows = by_doc.get(doc.id, [])
                reuse[doc.id] = ([previous.passages[i] for i in rows], vectors[rows])
        stats.removed = sorted(set(old_hash) - {d.id for d in docs})

    passages: list[Passage] = []
    blocks: list[np.ndarray] = []
    fresh: list[Passage] = []
    for doc in docs:
        if doc.id in reuse:
            old_passages, old_vectors = reuse[doc.id]
            passages.extend(old_passages)
            blocks.append(old_vectors)
            continue
        (stats.changed if doc.id in old_hash else stats.added).append(doc.id)
        new = chunk_document(doc, chunk_config)
        passages.extend(new)
        fresh.extend(new)
        blocks.append(np.empty((len(new), 0), dtype=np.float32))  # placeholder, filled below
    if not passages:
        raise ValueError(f"The documents in {docs_dir} produced no passages.")
    fresh_vectors = encoder.encode_passages([p.text for p in fresh], show_progress=show_progress) if fresh else None
    stats.embedded = len(fresh)
    vectors = _assemble(blocks, fresh_vectors, encoder.dimension)

    dense = make_faiss_index(vectors, approximate)
    stats.index_type = "hnsw" if "HNSW" in type(dense).__name__ else "flat"
    stats.passages = len(passages)
    files = {d.id: _doc_file(d, docs_dir) for d in docs}
    loaded = set(files.values())
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": encoder.name,
        "backend": backend_of(encoder),
        "dimension": int(vectors.shape[1]),
        "normalized": True,
        "metric": "inner_product",
        "index_type": stats.index_type,
        "chunking": asdict(chunk_config),
        "docs_dir": _relative_docs_dir(docs_dir, out_dir),
        "documents": [{"id": d.id, "file": files[d.id], "hash": hashes[files[d.id]]} for d in docs],
        # Files load_documents skipped (empty, binary, undecodable): recorded so they don't read as new.
        "skipped": [{"file": f, "hash": h} for f, h in hashes.items() if f not in loaded],
        "corpus_hash": hashlib.sha256("".join(sorted(hashes.values())).encode()).hexdigest()[:16],
        "passages": len(passages),
        "package_version": _package_version(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_atomic(out_dir, manifest, passages, docs, dense, make_bm25(passages))
    stats.seconds = round(time.perf_counter() - t0, 2)
    logger.info("index %s: %d documents, %d passages (%d embedded) in %.1fs",
                out_dir, stats.documents, stats.passages, stats.embedded, stats.seconds)
    return stats


def _assemble(blocks: list[np.ndarray], fresh: np.ndarray | None, dim: int) -> np.ndarray:
    out, k = [], 0
    for block in blocks:
        if block.shape[1] == 0:
            out.append(fresh[k : k + len(block)])
            k += len(block)
        else:
            out.append(block)
    return np.ascontiguousarray(np.vstack(out) if out else np.empty((0, dim)), dtype=np.float32)


def _reusable(out_dir: Path, encoder: Encoder, chunk_config: ChunkConfig) -> Index | None:
    """The existing index if its vectors can be reused (same format, model, backend and chunking)."""
    try:
        previous = Index.load(out_dir, model=encoder.name, backend=backend_of(encoder), check_documents=False)
    except (IndexNotFoundError, StaleIndexError, OSError, ValueError, KeyError) as err:
        if (out_dir / MANIFEST).exists():
            logger.info("rebuilding %s from scratch: %s", out_dir, err)
        return None
    if previous.manifest["chunking"] != asdict(chunk_config):
        logger.info("rebuilding %s from scratch: chunk settings changed", out_dir)
        return None
    return previous


def _write_atomic(out_dir: Path, manifest: dict, passages: list[Passage], docs: list[Document], dense, bm25) -> None:
    import faiss

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        with (tmp / PASSAGES).open("w", encoding="utf-8") as f:
            for p in passages:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        file_of = {row["id"]: row["file"] for row in manifest["documents"]}
        with (tmp / DOCUMENTS).open("w", encoding="utf-8") as f:
            for d in docs:
                row = {"id": d.id, "title": d.title, "path": d.path, "file": file_of[d.id], "text": d.text,
                       "pages": [list(p) for p in d.pages]}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        faiss.write_index(dense, str(tmp / DENSE))
        bm25.save(str(tmp / BM25_DIR), show_progress=False)
        # The manifest goes last: a folder without one never loads.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        old = out_dir.with_name(f".{out_dir.name}.old-{int(time.time() * 1000)}")
        if out_dir.exists():
            out_dir.rename(old)
        tmp.chmod(0o755)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
