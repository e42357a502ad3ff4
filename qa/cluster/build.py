"""Building any store with a Dask cluster's workers reading, chunking and embedding the documents.

The client lists the documents and decides, as a single-process build does, which are new or
changed (:mod:`qa.stores.local.build`, :mod:`qa.stores.milvus.build`); only those are sent to the workers,
in tasks of about ``TASK_BYTES`` of files, at most a few tasks per worker thread at a time. Then:

- **the local store and Milvus Lite's embedded file** (one process may write them): the workers send
  back each document, its passages and vectors, and the client writes them as the single-process
  build does, in document order, through the same code: the same manifest, resumable from the same
  checkpoint (vectors saved batch by batch, with the documents each batch completes, so a resumed
  build sends the workers nothing to embed again), published atomically;
- **a Milvus server**: each worker writes its documents into the version being built, and the
  client writes the manifest and publishes, as :func:`qa.stores.milvus.build.build_milvus` does.

A worker that dies has its tasks run again elsewhere (Dask retries a task whose worker died up to
``distributed.scheduler.allowed-failures`` times); past that, or on any other failure, the build stops
with one line and publishes nothing; running it again resumes.

Example:
    >>> stats = build_on_cluster("seeds", "embeddings", "local")
    >>> stats.passages, stats.embedded
    (412, 412)
"""

from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from qa.cluster.connect import ClusterError, cluster_client, first_line
from qa.cluster.tasks import EncoderSpec, WrittenDocument, describe_encoder, read_and_embed, read_embed_write
from qa.embedding.encoder import DEFAULT_BACKEND, Encoder
from qa.ingest.chunking import ChunkConfig
from qa.stores.address import StoreAddress, parse_address
from qa.stores.jobs import EMBED_BATCH, BuildStats, Job, Reader, ReadDocument, show_rate
from qa.stores.local.build import build_index

logger = logging.getLogger(__name__)

TASK_BYTES = 1 << 20  # document bytes a task reads at most: about 1,500 passages, tens of seconds on a core
TASK_DOCUMENTS = 1000  # and documents at most (tiny files)
TASKS_PER_THREAD = 2  # tasks queued or running per worker thread: each always has the next one
POLL_S = 5.0  # how often a wait for a task checks that the cluster still has workers
WORKERLESS_S = 120.0  # how long the cluster may have no workers before the build stops


def after_plan(jobs: list[Job]) -> None:
    """Called once the documents to read are known, before any is sent (tests replace it)."""


def build_on_cluster(
    docs_dir: str | Path,
    address: str | os.PathLike,
    cluster,
    model: str | None = None,
    chunk_config: ChunkConfig | None = None,
    encoder: Encoder | None = None,
    backend: str = DEFAULT_BACKEND,
    incremental: bool = True,
    approximate: bool | None = None,
    show_progress: bool = False,
    batch_size: int = EMBED_BATCH,
) -> BuildStats:
    """Build or update the store at ``address`` from ``docs_dir``, the documents read, chunked and
    embedded on ``cluster``'s workers.

    Args:
        docs_dir: the documents, at the same path on the client and every worker.
        address: any store address (see :mod:`qa.stores.address`).
        cluster: ``"local"``, ``"tcp://HOST:PORT"`` of a running scheduler, or a connected
            ``distributed.Client``.
        model, backend: the embedding model each worker loads (once per process).
        encoder: an encoder object sent to the workers instead (tests pass a fake one).
        chunk_config, incremental, approximate, show_progress, batch_size: as for
            :func:`qa.stores.local.build.build_index`.

    Returns:
        :class:`BuildStats`; ``embedded`` counts the passages the workers embedded.

    Raises:
        ClusterError: the cluster can't be reached, a worker can't read a file or write to the store,
            or a task's workers kept dying; nothing is published.
        and what :func:`qa.stores.local.build.build_index` and :func:`qa.stores.milvus.build.build_milvus` raise.
    """
    parsed = parse_address(address)
    docs_dir, chunk_config = Path(docs_dir), chunk_config or ChunkConfig()
    if isinstance(cluster, str):
        with cluster_client(cluster) as client:
            return _build(client, cluster, docs_dir, parsed, model, chunk_config, encoder, backend, incremental,
                          approximate, show_progress, batch_size)
    return _build(cluster, str(cluster.scheduler.address), docs_dir, parsed, model, chunk_config, encoder, backend,
                  incremental, approximate, show_progress, batch_size)


def _build(client, where: str, docs_dir: Path, address: StoreAddress, model, chunk_config: ChunkConfig,
           encoder, backend: str, incremental: bool, approximate, show_progress: bool, batch_size: int) -> BuildStats:
    source = encoder if encoder is not None else EncoderSpec(model, backend)
    tasks = _Tasks(client, where)
    if address.kind == "local":
        from qa.stores.local import folder

        folder.check_destination(docs_dir, Path(address.location))
        info = tasks.wait(client.submit(describe_encoder, source, pure=False))
        reader = _reader(tasks, docs_dir, chunk_config, source)
        return build_index(docs_dir, address.location, encoder=info, chunk_config=chunk_config,
                           incremental=incremental, approximate=approximate, show_progress=show_progress,
                           batch_size=batch_size, reader=reader)
    from qa.stores.milvus import build as milvus_build

    milvus_build.check_arguments(docs_dir, chunk_config, batch_size)
    info = tasks.wait(client.submit(describe_encoder, source, pure=False))
    if not address.is_server:  # Milvus Lite's embedded file: only this process may open it
        return milvus_build.build_milvus(docs_dir, address, encoder=info, chunk_config=chunk_config,
                                         incremental=incremental, approximate=approximate,
                                         show_progress=show_progress, batch_size=batch_size,
                                         reader=_reader(tasks, docs_dir, chunk_config, source))
    return _build_milvus_server(tasks, docs_dir, address, info, source, chunk_config, incremental, approximate,
                                show_progress)


class _Tasks:
    """Submits tasks to the cluster and waits for them, turning its failures into :class:`ClusterError`."""

    def __init__(self, client, where: str):
        self.client, self.where = client, where
        self.threads = max(1, sum(client.nthreads().values()))

    def submit(self, func: Callable, *args):
        return self.client.submit(func, *args, pure=False)

    def wait(self, future):
        """The task's result; its own error if it raised one (a :class:`ClusterError` names the worker)."""
        from concurrent.futures import CancelledError

        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        workerless_since = None
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                if self.client.nthreads():
                    workerless_since = None
                    continue
                workerless_since = workerless_since or time.monotonic()
                if time.monotonic() - workerless_since > WORKERLESS_S:
                    raise ClusterError(f"The Dask cluster at {self.where} has had no workers for {WORKERLESS_S:.0f} s: "
                                       "the build stopped and published nothing; start workers, then run it "
                                       "again (it resumes).") from None
            except KilledWorker as err:
                raise ClusterError(f"Workers of the Dask cluster at {self.where} died running the same task again "
                                   f"and again ({first_line(err)}): the build stopped and published nothing; check "
                                   "the workers' memory and logs, then run it again (it resumes).") from None
            except (CommClosedError, CancelledError) as err:  # the scheduler went away, and its tasks with it
                raise ClusterError(f"Lost the Dask scheduler at {self.where} ({first_line(err)}): the build stopped "
                                   "and published nothing; run it again when the scheduler is back (it resumes)."
                                   ) from None

    def in_order(self, groups: Iterator[tuple], func: Callable) -> Iterator:
        """``func(*group)`` of each group, run on the cluster, yielded in order; at most
        ``TASKS_PER_THREAD`` tasks a worker thread are in flight, and those left are cancelled on close."""
        pending: collections.deque = collections.deque()
        window = TASKS_PER_THREAD * self.threads
        try:
            for group in groups:
                pending.append(self.submit(func, *group))
                if len(pending) >= window:
                    yield self.wait(pending.popleft())
            while pending:
                yield self.wait(pending.popleft())
        finally:
            for future in pending:
                future.cancel()


def _groups(jobs: list[Job], threads: int) -> list[list[Job]]:
    """``jobs`` cut in order into tasks of at most ``TASK_BYTES`` (fewer bytes for a small corpus,
    so that every worker thread gets a few tasks) and ``TASK_DOCUMENTS``."""
    sizes = []
    for job in jobs:
        try:
            sizes.append(os.stat(job.path).st_size)
        except OSError:
            sizes.append(0)
    limit = max(1, min(TASK_BYTES, sum(sizes) // (4 * threads)))
    groups: list[list[Job]] = []
    group: list[Job] = []
    size = 0
    for job, job_size in zip(jobs, sizes):
        if group and (size + job_size > limit or len(group) >= TASK_DOCUMENTS):
            groups.append(group)
            group, size = [], 0
        group.append(job)
        size += job_size
    if group:
        groups.append(group)
    return groups


def _reader(tasks: _Tasks, docs_dir: Path, chunk_config: ChunkConfig, source) -> Reader:
    """A :data:`qa.stores.jobs.Reader` whose documents are read and embedded on the cluster."""
    chunking = {"chunk_size": chunk_config.chunk_size, "chunk_overlap": chunk_config.chunk_overlap}

    def read(jobs: list[Job], known: Callable[[str], frozenset[str]]) -> Iterator[ReadDocument]:
        after_plan(jobs)
        groups = ((group, [known(job.doc_id) for job in group], str(docs_dir), chunking, source)
                  for group in _groups(jobs, tasks.threads))
        for results in tasks.in_order(groups, read_and_embed):
            yield from results

    return read


def _build_milvus_server(tasks: _Tasks, docs_dir: Path, address: StoreAddress, info, source,
                         chunk_config: ChunkConfig, incremental: bool, approximate, show_progress: bool) -> BuildStats:
    """The workers write into the server; the client plans, writes the manifest and publishes."""
    from tqdm.auto import tqdm

    from qa.stores.milvus import build as milvus_build
    from qa.stores.milvus.store import connect, translated

    t0 = time.perf_counter()
    client = connect(address, create=True)
    header = milvus_build.header_of(info, chunk_config, docs_dir)
    chunking = {"chunk_size": chunk_config.chunk_size, "chunk_overlap": chunk_config.chunk_overlap}
    with translated(address):
        target = milvus_build.prepare(client, address, header, incremental)
        if not target.exists:  # created here, before the workers write into it
            milvus_build._create(client, target.name, info.dimension, header)
        writer = milvus_build._Writer(client, target.name, True, header, None, replace=target.exists)
        scanned_ns = time.time_ns()
        rows, jobs = milvus_build.plan(docs_dir, target)
        after_plan(jobs)
        stats, skipped, written = BuildStats(), [], 0
        groups = ((group, str(docs_dir), chunking, source, address, target.name, header, target.exists)
                  for group in _groups(jobs, tasks.threads))
        with tqdm(total=len(rows) + len(jobs), initial=len(rows), unit="doc", desc="Indexing",
                  disable=not show_progress) as bar:
            results: Iterator[list[WrittenDocument]] = tasks.in_order(groups, read_embed_write)
            try:
                for documents in results:
                    for document in documents:
                        bar.update(1)
                        if document.passages is None:
                            skipped.append(document.row)
                            continue
                        rows.append(document.row)
                        doc_id = document.row["id"]
                        (stats.changed if doc_id in target.old else stats.added).append(doc_id)
                        written += document.passages
                    milvus_build.after_batch(written)
                    show_rate(bar, written)
            finally:
                results.close()
        stats.embedded = written
        stats = milvus_build.finish(client, address, target, writer, docs_dir, header, rows, skipped, stats,
                                    approximate, scanned_ns)
    stats.seconds = round(time.perf_counter() - t0, 2)
    logger.info("index %s: %d documents, %d passages (%d embedded on the cluster) in %.1fs", address,
                stats.documents, stats.passages, stats.embedded, stats.seconds)
    return stats
