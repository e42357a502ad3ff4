"""Building and updating the local store, streaming: documents are read, chunked, written and
embedded one at a time, so memory holds each passage's vector and BM25 token ids, never the
corpus's text; then the FAISS and BM25 indexes are built and the new version published.

Only new or changed documents are read and embedded when an index of the same model and chunk
settings is already there (a file whose size and mtime are those recorded is not read); vectors are
checkpointed batch by batch (:mod:`qa.stores.local.checkpoint`) so a killed build resumes; the new version
is written and published atomically (:mod:`qa.stores.local.folder`). Reading the documents is shared with
the Milvus store and the cluster (:mod:`qa.stores.jobs`).

Example:
    >>> stats = build_index("seeds", "embeddings")
    >>> stats.passages, stats.embedded
    (412, 412)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import numpy as np

from qa.embedding.encoder import DEFAULT_BACKEND, Encoder, load_encoder
from qa.errors import InvalidInput
from qa.ingest.chunking import ChunkConfig
from qa.ingest.documents import document_files, document_ids, no_documents
from qa.jsonl import dumps_line
from qa.stores.base import CorruptIndexError, IndexWriteError, StaleIndexError
from qa.stores.jobs import (EMBED_BATCH, BuildStats, Job, Reader, corpus_hash, package_version, read_here,
                            release_workers, show_rate, stamp)
from qa.stores.local import folder
from qa.stores.local.checkpoint import Checkpoint, text_key
from qa.stores.local.folder import BM25_DIR, DENSE, DOCUMENTS, MANIFEST, PARTIAL, PASSAGES
from qa.stores.local.index import APPROX_THRESHOLD, Bm25Builder, Index, empty_faiss_index
from qa.stores.manifest import FORMAT_VERSION, _differs, backend_of
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

# Manifest fields that change with every build even when the index does not.
_VOLATILE = ("built_at", "package_version", "scanned_ns", "data")


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
    reader: Reader | None = None,
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
        reader: reads the new and changed documents (default :func:`read_here`, in this process; a
            cluster's reader embeds them on its workers, and ``encoder`` need only name the model).

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
        try:
            stats = _build(writer, docs_dir, encoder, chunk_config, incremental, approximate, show_progress, batch_size,
                           reader or read_here(docs_dir, chunk_config))
        finally:
            release_workers(encoder)
    stats.seconds = round(time.perf_counter() - t0, 2)
    logger.info("index %s: %d documents, %d passages (%d embedded%s) in %.1fs", out_dir, stats.documents,
                stats.passages, stats.embedded, "" if stats.written else ", unchanged", stats.seconds)
    return stats


def _build(writer: folder.Writer, docs_dir: Path, encoder: Encoder, chunk_config: ChunkConfig, incremental: bool,
           approximate: bool | None, show_progress: bool, batch_size: int, reader: Reader) -> BuildStats:
    """Stream the documents through: decide from file stamps and hashes what changed (reading only
    files that may have), then read, chunk, write and embed one document at a time. Memory holds
    each passage's vector and BM25 token ids, never the corpus's text.

    ``reader`` reads (and may embed) the new and changed documents, in order: :func:`read_here` in
    this process, or workers of a cluster (:mod:`qa.cluster.build`). Vectors it does not bring are
    embedded here with ``encoder``; only its ``name`` and ``backend`` are used when it brings them all."""
    out_dir = writer.out_dir
    # Size and mtime are taken before the files are read: a write in between then reads as a change.
    scanned_ns = time.time_ns()
    paths = document_files(docs_dir)
    ids = document_ids(docs_dir, paths)
    paths.sort(key=ids.__getitem__)  # passages in document-id order, as documents are listed everywhere
    previous = _reusable(out_dir, encoder, chunk_config) if incremental else None
    old = {row["id"]: row for row in previous.manifest["documents"]} if previous else {}
    old_skipped = {row["file"]: row for row in previous.manifest.get("skipped", [])} if previous else {}
    trusted_ns = previous.manifest.get("scanned_ns") if previous else None

    # 1. What changed. A file keeps its passages and vectors when its id, file and bytes are those
    #    recorded (its bytes read only when its size or mtime moved); a file skipped before and
    #    unchanged stays skipped. The others are read in step 2.
    plan: list[tuple[Path, str, str, dict | None]] = []  # (path, file, id, the row of a kept document)
    kept_skips: list[dict] = []
    for path in paths:
        rel, doc_id = path.relative_to(docs_dir).as_posix(), ids[path]
        before, skipped_before = old.get(doc_id), old_skipped.get(rel)
        if before is not None and before["file"] == rel and not _differs(path, before, trusted_ns):
            plan.append((path, rel, doc_id, {**before, **stamp(path)}))
        elif before is None and skipped_before is not None and not _differs(path, skipped_before, trusted_ns):
            kept_skips.append({**skipped_before, **stamp(path)})
        else:
            plan.append((path, rel, doc_id, None))
    removed = set(old) - {doc_id for _, _, doc_id, _ in plan}
    header = {"format_version": FORMAT_VERSION, "model": encoder.name, "backend": backend_of(encoder),
              "dimension": None, "normalized": True, "metric": "inner_product", "index_type": None,
              "chunking": asdict(chunk_config), "docs_dir": _relative_docs_dir(docs_dir, out_dir)}
    if previous is not None and all(row is not None for *_, row in plan) and not removed:
        manifest = {**header, **_corpus_fields([row for *_, row in plan], kept_skips),
                    "dimension": previous.manifest["dimension"], "index_type": previous.manifest["index_type"],
                    "passages": previous.manifest["passages"], "scanned_ns": scanned_ns}
        stats = BuildStats(documents=len(plan), passages=len(previous.passages), index_type=manifest["index_type"],
                           written=False)
        # Vectors a killed build saved: nothing is left to embed, so they are of no more use.
        Checkpoint(out_dir / PARTIAL, encoder.name, backend_of(encoder)).clear()
        if _same(manifest, previous.manifest):
            logger.info("index %s: nothing changed, left as it is", out_dir)
        else:
            # Same contents, only sizes or mtimes moved (a fresh clone, a touched file): record the
            # new stamps, so later loads skip hashing, and keep the data folder as it is.
            writer.restamp({**manifest, "built_at": previous.manifest.get("built_at"),
                            "package_version": previous.manifest.get("package_version")})
            logger.info("index %s: nothing changed, file stamps updated", out_dir)
        return stats

    # 2. Stream: each document's passages are written, tokenized for BM25 and queued for the
    #    encoder, which takes ``batch_size`` passages at a time, each batch checkpointed.
    from tqdm.auto import tqdm

    stats = BuildStats()
    checkpoint = Checkpoint(out_dir / PARTIAL, encoder.name, backend_of(encoder))
    embedder = _StreamingEmbedder(encoder, checkpoint, batch_size)
    bm25 = Bm25Builder()
    doc_rows: list[dict] = []
    skipped = list(kept_skips)
    version = writer.new_version()
    read = reader([Job(str(path), rel, doc_id) for path, rel, doc_id, row in plan if row is None], embedder.known)
    try:
        with (open(version / PASSAGES, "w", encoding="utf-8", newline="\n") as passages_out,
              open(version / DOCUMENTS, "w", encoding="utf-8", newline="\n") as documents_out,
              tqdm(total=len(plan), unit="doc", desc="Reading and embedding", disable=not show_progress) as bar):
            for path, rel, doc_id, row in plan:
                bar.update(1)
                if row is not None:
                    doc, rows = previous.documents[doc_id], previous._rows([doc_id])
                    passages = [previous.passages[i] for i in rows]
                    if len(rows):
                        embedder.reuse(previous.dense.reconstruct_batch(rows))
                else:
                    result = next(read)
                    if result.doc is None:
                        skipped.append(result.row)
                        continue
                    doc, row, passages = result.doc, result.row, list(result.passages)
                    (stats.changed if doc_id in old else stats.added).append(doc_id)
                    if result.vectors is None:
                        embedder.add(passages)
                    else:
                        embedder.add_embedded(doc_id, passages, result.vectors, result.reused)
                doc_rows.append(row)
                write_rows(passages_out, (p.to_dict() for p in passages))
                write_rows(documents_out, [_document_row(doc)])
                bm25.add([p.text for p in passages])
                stats.passages += len(passages)
                if show_progress:
                    show_rate(bar, stats.passages)
            if embedder.queue:  # the last batch (an upload's only one), while the bar still shows
                bar.set_description(f"Embedding the last {len(embedder.queue)} passages")
            vectors = embedder.finish()
        folder.after_step("passages")
        folder.after_step("documents")
        if not doc_rows:
            raise no_documents(docs_dir)
        if not stats.passages:
            raise InvalidInput(f"The documents in {docs_dir} produced no passages: add documents with text.")
        stats.removed = sorted(set(old) - {row["id"] for row in doc_rows})
        stats.documents, stats.embedded = len(doc_rows), embedder.embedded
        approximate = stats.passages > APPROX_THRESHOLD if approximate is None else approximate
        stats.index_type = "hnsw" if approximate else "flat"
        dimension = int(vectors[0].shape[1])
        # One index in memory at a time: the dense one is built, written and let go before BM25 is built.
        _write_dense(version, vectors, dimension, stats.passages, approximate)
        _write_bm25(version, bm25.build())
        del bm25
        manifest = {**header, **_corpus_fields(doc_rows, skipped), "dimension": dimension,
                    "index_type": stats.index_type, "passages": stats.passages, "scanned_ns": scanned_ns}
        writer.publish(version, manifest)
    except OSError as err:
        if writer.current() == version.name:  # published; only the tidying after it failed
            logger.warning("index %s published, but tidying up after it failed: %s", writer.out_dir, err)
            checkpoint.clear()
            return stats
        writer.discard(version)
        kept = "the previous index is unchanged" if previous is not None or writer.current() else "no index was written"
        raise IndexWriteError(f"Could not write the index at {writer.out_dir}: {err.strerror or err}"
                              f"{f' ({err.filename})' if err.filename else ''}; {kept}.") from err
    except BaseException:
        writer.discard(version)
        raise
    finally:
        read.close()  # a cluster's reader cancels the work still queued
    checkpoint.clear()
    return stats


def write_rows(out, rows) -> None:
    """Append ``rows`` to an open JSON-lines file (tests replace it to simulate a full disk)."""
    out.writelines(dumps_line(row) for row in rows)


def _corpus_fields(doc_rows: list[dict], skipped: list[dict]) -> dict:
    """The manifest's fields that describe the documents (in id order), and the build's stamps."""
    doc_rows = sorted(doc_rows, key=lambda r: r["id"])
    return {
        "documents": doc_rows,
        "skipped": sorted(skipped, key=lambda r: r["file"]),
        "corpus_hash": corpus_hash(doc_rows + skipped),
        "package_version": package_version(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _taken_blocks(parts: list[np.ndarray], rows: int = 65_536):
    """The vectors of ``parts``, in order, as contiguous blocks of about ``rows``, taken out of ``parts``
    as they go (FAISS adds them one after another: the vectors are never copied whole, and each block
    is freed once added)."""
    parts.reverse()
    pending, count = [], 0
    while parts:
        part = parts.pop()
        pending.append(part)
        count += len(part)
        if count >= rows:
            yield np.ascontiguousarray(np.vstack(pending), dtype=np.float32)
            pending, count = [], 0
    if pending:
        yield np.ascontiguousarray(np.vstack(pending), dtype=np.float32)


class _StreamingEmbedder:
    """The vectors of a stream of passages, in order: reused ones are given, those an interrupted
    build saved come from its checkpoint, the rest are embedded ``batch_size`` at a time, each batch
    saved before the next. Vectors embedded elsewhere (a cluster's workers) are saved likewise, with
    the keys of each document they complete, so a resumed cluster build embeds none of it again."""

    def __init__(self, encoder: Encoder, checkpoint: Checkpoint, batch_size: int):
        self.encoder, self.checkpoint, self.batch_size = encoder, checkpoint, batch_size
        self.saved = checkpoint.load()
        self.saved_documents = checkpoint.load_documents() if self.saved else {}
        self.parts: list[np.ndarray | None] = []  # one per document; None while some of it waits
        self.waiting: dict[int, list] = {}  # part -> [its rows (None until embedded), how many are None]
        self.queue: list[tuple[int, int, str, str]] = []  # (part, row, key, text) to embed
        self.unsaved: list[tuple[str, list[str], list[str], np.ndarray]] = []  # embedded elsewhere, not saved yet
        self.embedded = 0

    def known(self, doc_id: str) -> frozenset[str]:
        """The keys of ``doc_id``'s passages whose vectors an interrupted build saved."""
        return frozenset(key for key in self.saved_documents.get(doc_id, ()) if key in self.saved)

    def reuse(self, vectors: np.ndarray) -> None:
        self.parts.append(np.asarray(vectors, dtype=np.float32))

    def add_embedded(self, doc_id: str, passages: list[Passage], fresh: np.ndarray, reused: Iterable[int]) -> None:
        """A document's passages embedded where they were read: ``fresh`` holds the vectors of all but
        the rows ``reused``, whose vectors come from the checkpoint (see :meth:`known`)."""
        if not passages:
            return
        keys, reused = [text_key(p.text) for p in passages], set(reused)
        fresh = np.asarray(fresh, dtype=np.float32)
        new = [i for i in range(len(passages)) if i not in reused]
        if len(fresh) != len(new):
            raise ValueError(f"{len(fresh)} vectors came for the {len(new)} passages of {doc_id!r} left to embed")
        rows: list[np.ndarray] = [np.empty(0)] * len(passages)
        for i in reused:
            rows[i] = self.saved[keys[i]]
        for i, vector in zip(new, fresh):
            rows[i] = vector
        self.parts.append(np.stack(rows))
        if new:
            self.unsaved.append((doc_id, keys, [keys[i] for i in new], fresh))
            self.embedded += len(new)
            if sum(len(block) for *_, block in self.unsaved) >= self.batch_size:
                self._save_unsaved()

    def _save_unsaved(self) -> None:
        unsaved, self.unsaved = self.unsaved, []
        self.checkpoint.save([key for *_, new_keys, _ in unsaved for key in new_keys],
                             np.vstack([block for *_, block in unsaved]),
                             documents={doc_id: keys for doc_id, keys, _, _ in unsaved})

    def add(self, passages: list[Passage]) -> None:
        if not passages:
            return
        keys = [text_key(p.text) for p in passages]
        rows = [self.saved.pop(key, None) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if not missing:
            self.parts.append(np.stack(rows))
            return
        part = len(self.parts)
        self.parts.append(None)
        self.waiting[part] = [rows, len(missing)]
        self.queue.extend((part, i, keys[i], passages[i].text) for i in missing)
        while len(self.queue) >= self.batch_size:
            batch, self.queue = self.queue[: self.batch_size], self.queue[self.batch_size :]
            self._embed(batch)

    def _embed(self, batch: list[tuple[int, int, str, str]]) -> None:
        vectors = np.asarray(self.encoder.encode_passages([text for *_, text in batch], show_progress=False),
                             dtype=np.float32)
        self.checkpoint.save([key for _, _, key, _ in batch], vectors)
        self.embedded += len(batch)
        for (part, i, _, _), vector in zip(batch, vectors):
            waiting = self.waiting[part]
            waiting[0][i] = vector
            waiting[1] -= 1
            if not waiting[1]:
                self.parts[part] = np.stack(waiting[0])
                del self.waiting[part]

    def finish(self) -> list[np.ndarray]:
        """Every vector, as the blocks they came in (embedding what is still queued)."""
        if self.queue:
            batch, self.queue = self.queue, []
            self._embed(batch)
        if self.unsaved:
            self._save_unsaved()
        self.saved, self.saved_documents = {}, {}
        parts, self.parts = [part for part in self.parts if part is not None], []
        return parts


def _same(manifest: dict, previous: dict) -> bool:
    """Whether two manifests describe the same index (build time and version aside)."""
    strip = lambda m: {k: v for k, v in m.items() if k not in _VOLATILE}  # noqa: E731
    return strip(manifest) == strip(previous)


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


def _write_dense(version: Path, vectors: list[np.ndarray], dimension: int, passages: int, approximate: bool) -> None:
    """Build the dense index from ``vectors`` (emptied as FAISS takes them), serialise it, let it go, and
    write the bytes into the version folder, where the passages and documents are. At most the index
    and its serialised bytes are in memory at once."""
    import faiss

    dense = empty_faiss_index(dimension, passages, approximate)
    for block in _taken_blocks(vectors):
        dense.add(block)
    writer = faiss.VectorIOWriter()
    faiss.write_index(dense, writer)
    del dense
    # Written by Python from the serialised bytes themselves (no copy), so a full disk is an OSError
    # like any other write.
    with open(version / DENSE, "wb") as f:
        f.write(memoryview(faiss.rev_swig_ptr(writer.data.data(), writer.data.size())))
    del writer
    folder.after_step("dense")


def _write_bm25(version: Path, bm25) -> None:
    bm25.save(str(version / BM25_DIR), show_progress=False)
    folder.after_step("bm25")


# The backend interface of :mod:`qa.stores.address` (a folder address opens the local store).
def build_store(docs_dir, address, **options) -> BuildStats:
    """Build or update the local store at ``address.location`` (see :func:`build_index`)."""
    return build_index(docs_dir, address.location, **options)
