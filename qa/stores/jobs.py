"""What every store's build shares: the document files as jobs, reading and chunking them, and the
build's report.

A build plans :class:`Job` values (one a document file), hands them to a :data:`Reader` (:func:`read_here`
reads them in this process; :mod:`qa.cluster.build` reads and embeds them on a cluster's workers) and
writes what comes back into its store: :mod:`qa.stores.local.build` or :mod:`qa.stores.milvus.build`.

Example:
    >>> read = read_here(Path("seeds"), ChunkConfig())
    >>> next(read([Job("seeds/a.txt", "a.txt", "a")], lambda doc_id: frozenset())).passages[0].text
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import load_document
from qa.stores.manifest import _stat, hash_file
from qa.types import Document, Passage

if TYPE_CHECKING:
    import numpy as np

    from qa.embedding.encoder import Encoder

logger = logging.getLogger(__name__)

EMBED_BATCH = 1024  # passages embedded (and checkpointed) at a time


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


@dataclass(frozen=True)
class Job:
    """A document file to read: its path, its path relative to the corpus folder, and its id."""

    path: str
    file: str
    doc_id: str


@dataclass(frozen=True)
class ReadDocument:
    """What reading one :class:`Job` gave.

    Attributes:
        row: the document's manifest row (id, file, hash, size, mtime); for a file that could not be
            read, its row among the manifest's ``skipped`` (file, hash, reason, size, mtime).
        doc: the document, or ``None`` when it could not be read (skipped, as a warning said).
        passages: its passages.
        vectors: when it was embedded where it was read, the vectors of its passages in order, less
            those at ``reused`` (an interrupted build had saved them); ``None`` when not embedded yet.
        reused: the rows of ``passages`` whose vectors the reader was told are saved already.
    """

    row: dict
    doc: Document | None = None
    passages: tuple[Passage, ...] = ()
    vectors: np.ndarray | None = None
    reused: tuple[int, ...] = ()


# Reads jobs in order; the second argument gives, per document id, the passage keys an interrupted
# build saved vectors for (a reader that embeds need not embed those).
Reader = Callable[[list[Job], Callable[[str], frozenset[str]]], Iterator[ReadDocument]]


def read_document(job: Job, docs_dir: Path, chunk_config: ChunkConfig) -> ReadDocument:
    """Read and chunk one document file; a file that can't be read or isn't a document (binary,
    empty, undecodable) is skipped with a warning and recorded as skipped, as every build does.

    Its size and mtime are taken before it is read: a write in between reads as a change next time.
    """
    path = Path(job.path)
    file_stamp = stamp(path)
    try:
        doc = load_document(path, job.doc_id, docs_dir)
    except (OSError, ValueError) as err:  # ValueError: DocumentError, UnicodeError
        logger.warning("skipping %s: %s", path, err)
        # The reason is shown to whoever manages the documents (the app's Documents tab): an OSError's
        # own words, without the server's path.
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return ReadDocument({"file": job.file, "hash": hash_file(path), "reason": reason, **file_stamp})
    row = {"id": job.doc_id, "file": _doc_file(doc, docs_dir), "hash": doc.source_hash or hash_file(path), **file_stamp}
    return ReadDocument(row, doc, tuple(chunk_document(doc, chunk_config)))


def read_here(docs_dir: Path, chunk_config: ChunkConfig) -> Reader:
    """The reader of a single-process build: each document read in turn, in this process, not embedded."""

    def read(jobs: list[Job], known: Callable[[str], frozenset[str]]) -> Iterator[ReadDocument]:
        for job in jobs:
            yield read_document(job, docs_dir, chunk_config)

    return read


def _doc_file(doc: Document, root: Path) -> str:
    """The document's path relative to the corpus folder, symlinks not followed."""
    if doc.file:
        return doc.file
    return Path(os.path.relpath(os.path.abspath(doc.path), os.path.abspath(root))).as_posix()


def package_version() -> str:
    """This package's installed version (``0+unknown`` when it runs from a source tree that was not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa")
    except PackageNotFoundError:
        return "0+unknown"


def release_workers(encoder: Encoder) -> None:
    """Free what an encoder keeps for embedding passages only (the ONNX encoder's one-thread sessions)."""
    release = getattr(encoder, "release_workers", None)
    if release is not None:
        release()


def stamp(path: Path) -> dict:
    """The file's size and modification time, as a manifest records them (``{}`` when it can't be read)."""
    st = _stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns} if st else {}


def show_rate(bar, written: int) -> None:
    """Passages so far and per second, beside the bar's documents per second."""
    elapsed = max(bar.format_dict.get("elapsed", 0.0), 1e-9)
    bar.set_postfix_str(f"{written} passages, {written / elapsed:.1f} passages/s")


def corpus_hash(rows: Iterable[dict]) -> str:
    """A hash of the documents a manifest records (their files' hashes, in any order): the corpus's fingerprint."""
    return hashlib.sha256("".join(sorted(r["hash"] for r in rows)).encode()).hexdigest()[:16]
