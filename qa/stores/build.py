"""Building and updating the local store: chunk, embed (resumably, batch by batch), index, publish.

Only new or changed documents are embedded when an index of the same model and chunk settings is
already there; vectors are checkpointed (:mod:`qa.stores.checkpoint`) so a killed build resumes; the
new version is written and published atomically (:mod:`qa.stores.folder`).

Example:
    >>> stats = build_index("seeds", "embeddings")
    >>> stats.passages, stats.embedded
    (412, 412)
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa.embedding.encoder import DEFAULT_BACKEND, Encoder, load_encoder
from qa.errors import InvalidInput
from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import corpus_files, load_documents
from qa.jsonl import write_jsonl
from qa.stores import folder
from qa.stores.base import CorruptIndexError, IndexWriteError, StaleIndexError
from qa.stores.checkpoint import Checkpoint, text_key
from qa.stores.folder import BM25_DIR, DENSE, DOCUMENTS, MANIFEST, PARTIAL, PASSAGES
from qa.stores.index import APPROX_THRESHOLD, Index, make_bm25, make_faiss_index
from qa.stores.manifest import FORMAT_VERSION, _stat, backend_of, hash_file
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

EMBED_BATCH = 1024  # passages embedded (and checkpointed) at a time
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


def _relative_docs_dir(docs_dir: Path, out_dir: Path) -> str:
    """The documents' folder relative to the index folder, so a copied or cloned project still checks it."""
    return Path(os.path.relpath(docs_dir.resolve(), out_dir.resolve())).as_posix()


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
    if previous is not None and not fresh and _same(_unstamped(manifest), _unstamped(previous.manifest)):
        # Same contents, only sizes or mtimes moved (a fresh clone, a touched file): record the new
        # stamps, so later loads skip hashing, and keep the data folder as it is.
        writer.restamp({**manifest, "built_at": previous.manifest.get("built_at"),
                        "package_version": previous.manifest.get("package_version")})
        stats.written = False
        logger.info("index %s: nothing changed, file stamps updated", out_dir)
        return stats

    checkpoint = Checkpoint(out_dir / PARTIAL, encoder.name, backend_of(encoder))
    fresh_vectors, stats.embedded = _embed(fresh, encoder, checkpoint, batch_size, show_progress)
    vectors = _assemble(blocks, fresh_vectors)
    manifest["dimension"] = int(vectors.shape[1])
    dense = make_faiss_index(vectors, approximate)
    _write(writer, manifest, passages, docs, dense, make_bm25(passages), had_previous=previous is not None)
    checkpoint.clear()
    return stats


def _unstamped(manifest: dict) -> dict:
    """The manifest without the file stamps (sizes, mtimes) that a copy or a checkout changes."""
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("size", "mtime_ns")} for r in rows]  # noqa: E731
    return {**manifest, "documents": strip(manifest.get("documents", [])), "skipped": strip(manifest.get("skipped", []))}


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
