"""Building and updating the Milvus store, streaming: documents are read, chunked, embedded and
written a batch at a time, so memory holds one batch, never the corpus.

A full build (no index yet, another model or chunking, or ``incremental=False``) writes a new
version of the collection and publishes it by moving the alias; one killed on the way (the client
or the server) is resumed by the next run, which skips every document the unpublished version
already holds whole. An update of the same model and chunking works in place, document by document,
and reads only files whose size or mtime changed (as the local store's staleness check does).

Example:
    >>> stats = build_milvus("seeds", parse_address("milvus:./qa.db"), show_progress=True)
    >>> stats.passages
    412
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.embedding.encoder import DEFAULT_BACKEND, Encoder, load_encoder
from qa.errors import InvalidInput, MissingPath
from qa.ingest.chunking import ChunkConfig
from qa.ingest.documents import corpus_files, document_ids
from qa.stores.address import StoreAddress
from qa.stores.jobs import (EMBED_BATCH, BuildStats, Job, Reader, corpus_hash, package_version, read_here,
                            release_workers, show_rate)
from qa.stores.local.index import APPROX_THRESHOLD, HNSW_EF_CONSTRUCTION, HNSW_M
from qa.stores.manifest import FORMAT_VERSION, _differs, _stat, backend_of
from qa.stores.milvus.store import (MANIFEST_DOC, MAX_PASSAGE_CHARS, analyzer, connect, docs_name, published,
                                    quoted, read_manifest_rows, row_id, text_parts, translated, version_name,
                                    versions)
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

WRITE_ROWS = 500  # rows per insert call (a few MB: well under the 64 MiB a gRPC message may hold)
INDEX_WAIT_S = 600  # how long a dropped index may take to go before the HNSW one replaces it
BUILD_PROPERTY = "qa.build"  # the passages collection's property naming what a version is being built with


def after_batch(written: int) -> None:
    """Called after each batch is written (``written``: passages so far); tests replace it to
    simulate a crash there."""


def _document_key(doc_id: str, part: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{doc_id}\0{part}".encode("utf-8")).digest()[:8], "big") >> 1


def _create(client, name: str, dimension: int, header: dict) -> None:
    """Create the passages collection ``name`` and its documents collection, FLAT-indexed and loaded."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("passage_id", DataType.VARCHAR, max_length=2048)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=2048)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params=analyzer())
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index(field_name="dense", index_type="FLAT", metric_type="IP")
    index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    docs = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    docs.add_field("id", DataType.INT64, is_primary=True)
    docs.add_field("doc_id", DataType.VARCHAR, max_length=2048)
    docs.add_field("part", DataType.INT64)
    docs.add_field("text", DataType.VARCHAR, max_length=65535)
    docs.add_field("meta", DataType.JSON)
    docs.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    docs_index = client.prepare_index_params()
    docs_index.add_index(field_name="unused", index_type="FLAT", metric_type="IP")
    # Indexes are made without waiting for them (sync=False): pymilvus's wait asks for a timestamp that
    # Milvus Lite doesn't give, and loading waits for the index anyway.
    client.create_collection(docs_name(name), schema=docs)
    client.create_index(docs_name(name), docs_index, sync=False)
    client.load_collection(docs_name(name))
    # Created last: a passages collection whose property is set has its documents collection.
    client.create_collection(name, schema=schema, properties={BUILD_PROPERTY: json.dumps(header, sort_keys=True)})
    client.create_index(name, index, sync=False)
    client.load_collection(name)


def _drop(client, name: str) -> None:
    for collection in (name, docs_name(name)):
        if client.has_collection(collection):
            client.drop_collection(collection)


def _target(client, address: StoreAddress, current: str | None, header: dict) -> tuple[str, bool]:
    """The unpublished version to build into: the newest one when it was being built with the same
    settings (resume), else a new name (created on the first write). Returns (name, exists)."""
    unpublished = [v for v in versions(client, address.collection) if current is None or v > current]
    if unpublished:
        newest = unpublished[-1]
        properties = client.describe_collection(newest).get("properties", {}) if client.has_collection(newest) else {}
        if properties.get(BUILD_PROPERTY) == json.dumps(header, sort_keys=True) and client.has_collection(
                docs_name(newest)):
            logger.info("resuming the interrupted build of %s", newest)
            for stale in unpublished[:-1]:
                _drop(client, stale)
            return newest, True
        for stale in unpublished:
            logger.info("removing %s, left by an interrupted build of other settings", stale)
            _drop(client, stale)
    numbers = [int(v.rsplit("__v", 1)[1]) for v in versions(client, address.collection)]
    return version_name(address.collection, max(numbers, default=0) + 1), False


def _held(client, name: str) -> dict[str, dict]:
    """The documents an unpublished version already holds whole: id -> their manifest row."""
    client.load_collection(docs_name(name))
    rows = client.query(docs_name(name), filter="part == 0", output_fields=["doc_id", "meta"])
    return {r["doc_id"]: r["meta"]["row"] for r in rows if r["doc_id"] != MANIFEST_DOC}


class _Writer:
    """Writes batches of (document, passages) into one version, in place or fresh."""

    def __init__(self, client, name: str, exists: bool, header: dict, encoder: Encoder, replace: bool):
        self.client, self.name, self.exists, self.header, self.encoder = client, name, exists, header, encoder
        self.replace = replace  # the version may hold older rows of these documents: remove them
        self.embedded = 0

    def write(self, batch: list[tuple[Document, dict, list[Passage]]], vectors: np.ndarray | None = None) -> None:
        """Write ``batch``'s documents and passages, embedding the passages unless ``vectors`` (theirs,
        in order) are given."""
        passages = [p for _, _, ps in batch for p in ps]
        if vectors is None:
            vectors = np.asarray(self.encoder.encode_passages([p.text for p in passages], show_progress=False),
                                 dtype=np.float32) if passages else np.zeros((0, 1), np.float32)
            self.embedded += len(passages)
        if not self.exists:
            if not passages:
                return  # the collection is made when the first vectors tell their dimension
            _create(self.client, self.name, int(vectors.shape[1]), self.header)
            self.exists = True
        rows = [{"id": row_id(p), "passage_id": p.id, "doc_id": p.doc_id, "text": p.text, "start": p.start,
                 "end": p.end, "dense": v.tolist()} for p, v in zip(passages, vectors)]
        for i in range(0, len(rows), WRITE_ROWS):
            self.client.upsert(self.name, rows[i : i + WRITE_ROWS])
        doc_rows = []
        for doc, entry, ps in batch:
            if self.replace:
                keep = ", ".join(str(row_id(p)) for p in ps)
                self.client.delete(self.name, filter=f"doc_id == {quoted([doc.id])[1:-1]} and id not in [{keep}]")
            parts = text_parts(doc.text)
            meta = {"title": doc.title, "path": doc.path, "file": doc.file, "source_hash": doc.source_hash,
                    "pages": [list(p) for p in doc.pages], "parts": len(parts), "row": entry}
            doc_rows += [{"id": _document_key(doc.id, i), "doc_id": doc.id, "part": i, "text": part,
                          "meta": meta if i == 0 else {"parts": len(parts)}, "unused": [1.0, 0.0]}
                         for i, part in enumerate(parts)]
            if self.replace:
                self.client.delete(docs_name(self.name),
                                   filter=f"doc_id == {quoted([doc.id])[1:-1]} and part >= {len(parts)}")
        # The documents' rows go last: a document with its part 0 written is whole (resume skips it).
        for i in range(0, len(doc_rows), WRITE_ROWS // 10):
            self.client.upsert(docs_name(self.name), doc_rows[i : i + WRITE_ROWS // 10])

    def remove(self, doc_ids: list[str]) -> None:
        for i in range(0, len(doc_ids), 500):
            expr = f"doc_id in {quoted(doc_ids[i : i + 500])}"
            self.client.delete(self.name, filter=expr)
            self.client.delete(docs_name(self.name), filter=expr)

    def count(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def index(self, approximate: bool) -> None:
        """Make the dense index HNSW (past ``APPROX_THRESHOLD`` passages) instead of FLAT.

        At 1M passages Milvus Lite took 424 s to answer the ``create_index``, pymilvus sent it again,
        and the second answer was "index already exists for field 'dense'" although the first had
        made it; and a dropped index may still be listed for a while. So: an index that is already
        HNSW (an interrupted run made it) is kept; a dropped one is waited for; "already exists" is
        success when the index is now HNSW.
        """
        from pymilvus import MilvusException

        if not approximate:
            return
        if self._dense_index_type() != "HNSW":
            self.client.release_collection(self.name)
            self.client.drop_index(self.name, "dense")
            index = self.client.prepare_index_params()
            index.add_index(field_name="dense", index_type="HNSW", metric_type="IP",
                            params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
            deadline = time.monotonic() + INDEX_WAIT_S
            while True:
                if "dense" not in self.client.list_indexes(self.name, field_name="dense"):
                    try:
                        self.client.create_index(self.name, index, sync=False)
                        break
                    except MilvusException as err:
                        if "already exists" not in str(err):
                            raise
                        if self._dense_index_type() == "HNSW":
                            break
                if time.monotonic() > deadline:
                    raise MilvusException(message=f"the FLAT index of {self.name} was still there {INDEX_WAIT_S} s "
                                          "after it was dropped; run the build again to finish it")
                time.sleep(1.0)
        self.client.load_collection(self.name)

    def _dense_index_type(self) -> str | None:
        from pymilvus import MilvusException

        try:
            return self.client.describe_index(self.name, "dense").get("index_type")
        except MilvusException:
            return None

    def save_manifest(self, manifest: dict) -> None:
        """Write the manifest as a new version of its rows, then remove the older versions."""
        docs = docs_name(self.name)
        old = self.client.query(docs, filter=f"doc_id == {quoted([MANIFEST_DOC])[1:-1]}", output_fields=["meta"])
        version = max((r["meta"]["version"] for r in old), default=0) + 1
        parts = text_parts(json.dumps(manifest, ensure_ascii=False))
        rows = [{"id": _document_key(f"{MANIFEST_DOC}\0{version}", i), "doc_id": MANIFEST_DOC, "part": i,
                 "text": part, "meta": {"version": version, "parts": len(parts)}, "unused": [1.0, 0.0]}
                for i, part in enumerate(parts)]
        for i in range(0, len(rows), 20):
            self.client.upsert(docs, rows[i : i + 20])
        self.client.delete(docs, filter=f"doc_id == {quoted([MANIFEST_DOC])[1:-1]} and "
                                        f"id not in [{', '.join(str(r['id']) for r in rows)}]")
        self.client.flush(docs)
        self.client.flush(self.name)


def build_milvus(
    docs_dir: str | Path,
    address: StoreAddress,
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
    """Build (or update) the Milvus store at ``address`` from ``docs_dir``, streaming.

    The arguments are those of :func:`qa.stores.local.build.build_index`; ``batch_size`` passages are read,
    embedded and written at a time.

    Raises:
        MissingPath: no folder at ``docs_dir``.
        InvalidInput: a chunk size a Milvus text field can't hold; no passages in the documents.
        StoreUnavailableError: the server cannot be reached (or went away) or refuses the token; what
            was written is kept, and the next run resumes from it.
    """
    t0 = time.perf_counter()
    docs_dir, chunk_config = Path(docs_dir), chunk_config or ChunkConfig()
    check_arguments(docs_dir, chunk_config, batch_size)
    client = connect(address, create=True)
    encoder = encoder or load_encoder(model, backend=backend)
    header = header_of(encoder, chunk_config, docs_dir)
    with translated(address):
        try:
            stats = _build(client, address, docs_dir, encoder, header, incremental, approximate, show_progress,
                           batch_size, reader or read_here(docs_dir, chunk_config))
        finally:
            release_workers(encoder)
    stats.seconds = round(time.perf_counter() - t0, 2)
    logger.info("index %s: %d documents, %d passages (%d embedded%s) in %.1fs", address, stats.documents,
                stats.passages, stats.embedded, "" if stats.written else ", unchanged", stats.seconds)
    return stats


@dataclass(frozen=True)
class Target:
    """Which collection a build writes, decided before anything is read.

    Attributes:
        current: the published version, or ``None``.
        previous: its manifest, or ``None``.
        in_place: an update of the published version (same model, backend and chunking).
        name: the version written to: ``current`` in place, else an unpublished one.
        exists: whether ``name`` exists already (in place, or a resumed build).
        old: manifest rows of the documents ``name`` holds, by id.
    """

    current: str | None
    previous: dict | None
    in_place: bool
    name: str
    exists: bool
    old: dict[str, dict]


def prepare(client, address: StoreAddress, header: dict, incremental: bool) -> Target:
    """Decide where the build of ``header``'s settings goes (see :class:`Target`)."""
    current = published(client, address.collection)
    previous = None
    if current is not None:
        client.load_collection(docs_name(current))
        previous = read_manifest_rows(client, docs_name(current))
    same = previous is not None and all(previous.get(k) == v for k, v in header.items() if k != "docs_dir")
    in_place = incremental and same
    if in_place:
        return Target(current, previous, True, current, True, {row["id"]: row for row in previous["documents"]})
    name, exists = _target(client, address, current, header)
    if previous is not None:
        reason = "a full rebuild was asked for" if same else "the model, backend or chunking changed"
        logger.info("building %s as %s: %s", address, name, reason)
    return Target(current, previous, False, name, exists, _held(client, name) if exists else {})


def plan(docs_dir: Path, target: Target) -> tuple[list[dict], list[Job]]:
    """The manifest rows of the documents ``target`` holds unchanged (their bytes read only when
    their size or mtime moved), and the files to read: the new and changed ones."""
    paths = corpus_files(docs_dir)
    ids = document_ids(docs_dir, paths)
    trusted_ns = target.previous.get("scanned_ns") if target.in_place else None
    kept, jobs = [], []
    for path in paths:
        rel, doc_id = path.relative_to(docs_dir).as_posix(), ids[path]
        before = target.old.get(doc_id)
        if before is not None and before.get("file") == rel and not _differs(path, before, trusted_ns):
            st = _stat(path)
            kept.append({**before, **({"size": st.st_size, "mtime_ns": st.st_mtime_ns} if st else {})})
        else:
            jobs.append(Job(str(path), rel, doc_id))
    return kept, jobs


def check_arguments(docs_dir: Path, chunk_config: ChunkConfig, batch_size: int) -> None:
    """Refuse, before anything is connected or loaded, what a Milvus build can't do.

    Raises:
        InvalidInput: a batch size below 1; a chunk size a Milvus text field can't hold.
        MissingPath: no folder at ``docs_dir``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    if not docs_dir.is_dir():
        raise MissingPath(f"Document folder not found: {docs_dir} (pass --docs DIR with your documents).")
    if chunk_config.chunk_size > MAX_PASSAGE_CHARS:
        raise InvalidInput(f"--chunk-size {chunk_config.chunk_size} is more than a Milvus text field holds "
                           f"({MAX_PASSAGE_CHARS} characters): pass a smaller --chunk-size.")


def header_of(encoder, chunk_config: ChunkConfig, docs_dir: Path) -> dict:
    """What a version is built with (its ``BUILD_PROPERTY``, and the manifest's first fields)."""
    return {"format_version": FORMAT_VERSION, "model": encoder.name, "backend": backend_of(encoder),
            "chunking": asdict(chunk_config), "docs_dir": str(docs_dir.resolve())}


def _build(client, address: StoreAddress, docs_dir: Path, encoder: Encoder, header: dict, incremental: bool,
           approximate: bool | None, show_progress: bool, batch_size: int, reader: Reader) -> BuildStats:
    """Write the new and changed documents, ``batch_size`` passages at a time, as ``reader`` reads
    them (:func:`qa.stores.jobs.read_here`, or a cluster's workers, which bring their vectors)."""
    from tqdm.auto import tqdm

    target = prepare(client, address, header, incremental)
    writer = _Writer(client, target.name, target.exists, header, encoder, replace=target.exists)
    scanned_ns = time.time_ns()
    rows, jobs = plan(docs_dir, target)
    stats = BuildStats()
    skipped: list[dict] = []
    batch: list[tuple[Document, dict, list[Passage]]] = []
    vectors: list[np.ndarray] = []  # the batch's, when the reader brings them
    pending = written = embedded = 0
    read = reader(jobs, lambda doc_id: frozenset())
    with tqdm(total=len(rows) + len(jobs), initial=len(rows), unit="doc", desc="Indexing",
              disable=not show_progress) as bar:
        try:
            for job, result in zip(jobs, read):
                bar.update(1)
                if result.doc is None:
                    skipped.append(result.row)
                    continue
                rows.append(result.row)
                (stats.changed if job.doc_id in target.old else stats.added).append(job.doc_id)
                batch.append((result.doc, result.row, list(result.passages)))
                if result.vectors is not None:
                    vectors.append(result.vectors)
                    embedded += len(result.vectors)
                pending += len(result.passages)
                if pending >= batch_size:
                    writer.write(batch, np.vstack(vectors) if vectors else None)
                    written += pending
                    batch, vectors, pending = [], [], 0
                    after_batch(written)
                    show_rate(bar, written)
            if batch:
                writer.write(batch, np.vstack(vectors) if vectors else None)
                written += pending
                after_batch(written)
                show_rate(bar, written)
        finally:
            read.close()  # a cluster's reader cancels the work still queued
    stats.embedded = writer.embedded + embedded
    return finish(client, address, target, writer, docs_dir, header, rows, skipped, stats, approximate, scanned_ns)


def finish(client, address: StoreAddress, target: Target, writer: "_Writer", docs_dir: Path, header: dict,
           rows: list[dict], skipped: list[dict], stats: BuildStats, approximate: bool | None,
           scanned_ns: int) -> BuildStats:
    """After every new and changed document is written: remove the documents no longer in the
    folder, write the manifest (``rows``: every document's), and publish a new version."""
    previous, in_place, name = target.previous, target.in_place, target.name
    kept = {r["id"] for r in rows}
    leftover = sorted(set(target.old) - kept)  # held by the version written to, no longer in the folder
    if leftover:
        writer.remove(leftover)
    stats.removed = leftover if in_place else sorted({r["id"] for r in (previous or {}).get("documents", [])} - kept)
    stats.documents = len(rows)
    if not writer.exists:
        raise InvalidInput(f"The documents in {docs_dir} produced no passages: add documents with text.")
    stats.passages = writer.count()
    if not stats.passages:
        raise InvalidInput(f"The documents in {docs_dir} produced no passages: add documents with text.")
    rows.sort(key=lambda r: r["id"])
    if in_place:
        stats.index_type = previous.get("index_type", "flat")
    else:
        approximate = stats.passages > APPROX_THRESHOLD if approximate is None else approximate
        stats.index_type = "hnsw" if approximate else "flat"
    manifest = {
        **header, "dimension": None, "normalized": True, "metric": "inner_product", "index_type": stats.index_type,
        "documents": rows, "skipped": skipped, "passages": stats.passages,
        "collection": name,
        "corpus_hash": corpus_hash(rows + skipped),
        "scanned_ns": scanned_ns, "package_version": package_version(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "analyzer": analyzer(),
    }
    manifest["dimension"] = next(f["params"]["dim"] for f in client.describe_collection(name)["fields"]
                                 if f["name"] == "dense")
    if in_place:
        if not (stats.added or stats.changed or stats.removed):
            stats.written = False
            if _unstamped(manifest) == _unstamped(previous):
                return stats
            manifest["built_at"] = previous.get("built_at")
        writer.save_manifest(manifest)
        return stats
    writer.index(stats.index_type == "hnsw")
    writer.save_manifest(manifest)
    _publish(client, address, name, target.current)
    return stats


def _unstamped(manifest: dict) -> dict:
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("size", "mtime_ns")} for r in rows]  # noqa: E731
    volatile = ("built_at", "package_version", "scanned_ns")
    return {**{k: v for k, v in manifest.items() if k not in volatile}, "documents": strip(manifest["documents"]),
            "skipped": strip(manifest.get("skipped", []))}


def _publish(client, address: StoreAddress, name: str, current: str | None) -> None:
    """Point the alias at ``name`` (the publish), then drop versions older than the one it replaced
    (that one stays, so a process still serving it goes on answering until it reloads)."""
    if current is None:
        client.create_alias(name, address.collection)
    else:
        client.alter_alias(name, address.collection)
    logger.info("published %s as %s", name, address)
    keep = {name, current}
    for version in versions(client, address.collection):
        if version not in keep and version < name:
            _drop(client, version)


# The backend interface of :mod:`qa.stores.address` (a Milvus address).
def build_store(docs_dir, address: StoreAddress, **options) -> BuildStats:
    """Build or update the Milvus store at ``address`` (see :func:`build_milvus`)."""
    return build_milvus(docs_dir, address, **options)
