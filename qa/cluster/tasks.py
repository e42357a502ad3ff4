"""What a cluster's workers run: read, chunk and embed a group of documents, and, for a Milvus
server, write them into it.

Each worker process loads the encoder once (:meth:`EncoderSpec.load` is cached per process) and
embeds a task's new passages in one call, so a task's documents are one batch. A worker that can't
open a file the client listed stops the build with a line naming the worker and the file: the
workers must see the documents at the client's path (a shared file system); a file that opens but
is not a document (binary, empty, undecodable) is skipped, as every build skips it.

Example:
    >>> read_and_embed([Job("seeds/a.txt", "a.txt", "a")], [frozenset()], "seeds", {"chunk_size": 800,
    ...                "chunk_overlap": 200}, EncoderSpec(None, "onnx-int8"))[0].vectors.shape
    (3, 384)
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.cluster.connect import ClusterError, first_line
from qa.errors import UserError
from qa.ingest.chunking import ChunkConfig
from qa.stores.jobs import Job, ReadDocument, read_document
from qa.stores.local.checkpoint import text_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSpec:
    """The encoder a worker loads: a model path or name (``None``: the packaged default) and a backend."""

    model: str | None
    backend: str

    def load(self):
        return _worker_encoder(self.model, self.backend)


@functools.lru_cache(maxsize=2)
def _worker_encoder(model: str | None, backend: str):
    from qa.embedding.encoder import load_encoder

    # A worker runs one task a thread: each embeds on one core (torch reads OMP_NUM_THREADS=1, which
    # Dask's nanny sets for every worker it starts).
    return load_encoder(model, backend=backend, **({"threads": 1} if backend.startswith("onnx") else {}))


@dataclass(frozen=True)
class EncoderInfo:
    """What the client needs to know of the workers' encoder (it never loads it)."""

    name: str
    backend: str
    dimension: int


@dataclass(frozen=True)
class WrittenDocument:
    """A document a worker wrote into a Milvus server: its manifest row, and how many passages it has;
    ``passages`` is ``None`` for a file skipped (``row`` is then its row among the skipped)."""

    row: dict
    passages: int | None


def _plain_errors(task):
    """Raise a task's :class:`ClusterError` again without the exception it was raised from: Dask sends a
    task's error to the client pickled with its context, and a Milvus or gRPC error in that chain does not
    pickle, which would turn the one clear line into a bare ``Exception`` holding its repr."""

    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except ClusterError as err:
            failure = ClusterError(str(err))
        raise failure  # outside the handler: no __context__

    return run


def _encoder(source):
    return source.load() if isinstance(source, EncoderSpec) else source


def worker_name() -> str:
    """This worker's address, for messages (``this process`` outside a worker)."""
    try:
        from distributed import get_worker

        return f"worker {get_worker().address}"
    except (ImportError, ValueError):
        return "this process"


@_plain_errors
def describe_encoder(source) -> EncoderInfo:
    """The name, backend and dimension of the encoder ``source`` gives (loading it on this worker)."""
    try:
        encoder = _encoder(source)
        return EncoderInfo(encoder.name, getattr(encoder, "backend", "torch"), int(encoder.dimension))
    except UserError as err:
        raise ClusterError(f"On {worker_name()}: {first_line(err)}") from None


def _read(job: Job, docs_dir: Path, chunk_config: ChunkConfig) -> ReadDocument:
    try:
        Path(job.path).open("rb").close()
    except OSError as err:
        raise ClusterError(f"{worker_name()} cannot read {job.path} ({err.strerror or err}): the workers must see "
                           "the documents at the path the client lists them from (a shared file system).") from None
    return read_document(job, docs_dir, chunk_config)


@_plain_errors
def read_and_embed(jobs: Sequence[Job], known: Sequence[frozenset[str]], docs_dir: str, chunking: dict,
                   source) -> list[ReadDocument]:
    """Read, chunk and embed ``jobs`` in one batch; ``known[i]``: the keys of ``jobs[i]``'s passages
    whose vectors the client has already (not embedded again: their rows are the result's ``reused``).

    Raises:
        ClusterError: a file can't be opened here, or the encoder can't be loaded.
    """
    chunk_config, docs_dir_path = ChunkConfig(**chunking), Path(docs_dir)
    read = [_read(job, docs_dir_path, chunk_config) for job in jobs]
    fresh = [[i for i, p in enumerate(r.passages) if text_key(p.text) not in saved] for r, saved in zip(read, known)]
    texts = [r.passages[i].text for r, rows in zip(read, fresh) for i in rows]
    encoder = _encoder(source)
    try:
        vectors = np.asarray(encoder.encode_passages(texts), dtype=np.float32) if texts else None
    except UserError as err:
        raise ClusterError(f"On {worker_name()}: {first_line(err)}") from None
    if vectors is None:
        vectors = np.zeros((0, int(encoder.dimension)), dtype=np.float32)
    out, start = [], 0
    for r, rows in zip(read, fresh):
        if r.doc is None:
            out.append(r)
            continue
        reused = tuple(i for i in range(len(r.passages)) if i not in set(rows))
        out.append(ReadDocument(r.row, r.doc, r.passages, vectors[start : start + len(rows)], reused))
        start += len(rows)
    return out


@functools.lru_cache(maxsize=4)
def _milvus(address):
    from qa.stores.milvus.store import connect

    return connect(address)


@_plain_errors
def read_embed_write(jobs: Sequence[Job], docs_dir: str, chunking: dict, source, address, collection: str,
                     header: dict, replace: bool) -> list[WrittenDocument]:
    """Read, chunk and embed ``jobs``, and write them into ``collection`` of the Milvus server at
    ``address`` (a version :func:`qa.stores.milvus.build.prepare` chose; it exists already).

    Raises:
        ClusterError: a file can't be opened here, or the server can't be reached from here or refuses
            the writes (the token comes from this worker's ``QA_MILVUS_TOKEN``).
    """
    from pymilvus.exceptions import MilvusException

    from qa.stores.milvus.build import _Writer
    from qa.stores.milvus.store import translated

    read = read_and_embed(jobs, [frozenset()] * len(jobs), docs_dir, chunking, source)
    batch = [(r.doc, r.row, list(r.passages)) for r in read if r.doc is not None]
    try:
        with translated(address):
            writer = _Writer(_milvus(address), collection, True, header, None, replace=replace)
            if batch:
                writer.write(batch, np.vstack([r.vectors for r in read if r.doc is not None]))
    except UserError as err:
        raise ClusterError(f"On {worker_name()}: {first_line(err)}") from None
    except MilvusException as err:
        raise ClusterError(f"The Milvus server at {address.location} refused the writes of {worker_name()} "
                           f"({first_line(err)}): check that this worker's token may write there.") from None
    return [WrittenDocument(r.row, None if r.doc is None else len(r.passages)) for r in read]
