"""The Milvus store: passages, vectors and BM25 in Milvus (Lite embedded, Lite server, Standalone, Distributed).

Layout, for the collection name ``NAME`` of the address (``milvus:./qa.db#NAME``, default ``qa``):

- alias ``NAME`` -> ``NAME__v000003``, the published passages collection: ``id`` (INT64, a hash of
  the passage), ``passage_id``, ``doc_id``, ``text`` (VARCHAR, analyzer enabled), ``start``, ``end``,
  ``dense`` (FLOAT_VECTOR, inner product; FLAT up to ``APPROX_THRESHOLD`` passages, HNSW beyond, as
  the local store) and ``sparse`` (SPARSE_FLOAT_VECTOR filled by the engine's BM25 function);
- ``NAME__v000003__docs``: the documents' full texts (citations and the viewer read them from here),
  cut into parts of at most ``PART_CHARS`` characters, and the manifest (model, backend, chunking,
  per-document hashes: the same fields as the local ``manifest.json``) as rows of ``doc_id`` "".

:mod:`qa.stores.milvus.build` writes it. A full build writes a new version and then moves the alias: that move is the publish, so a build
killed at any point (client or server) leaves the previous version served whole. Updates of the same
model and chunking are made in place, document by document (upsert the new passages, then delete
the document's others); the manifest is written last, so a killed update is finished by running it again.

Example:
    >>> store = open_store(parse_address("milvus:./qa.db"))
    >>> store.hybrid_search(encoder.encode_queries(["flu jab"])[0], "flu jab", k=3)
    [(88123..., 0.0325), ...]
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from qa.stores.address import TOKEN_VARIABLE, StoreAddress
from qa.stores.base import (CorruptIndexError, IndexNotFoundError, IndexWriteError, StaleIndexError,
                            StoreUnavailableError)
from qa.stores.local.index import HNSW_EF_SEARCH
from qa.stores.manifest import READABLE_FORMATS, backend_of, stale_reason
from qa.types import Document, Passage

logger = logging.getLogger(__name__)

PART_CHARS = 16_000  # a VARCHAR holds 65,535 bytes: 16,000 characters of up to 4 bytes each
MAX_PASSAGE_CHARS = 16_000  # so a passage fits one VARCHAR too (chunk sizes above it are refused)
MANIFEST_DOC = ""  # the doc_id of the manifest's rows in the documents collection (no document has it)
CALL_TIMEOUT = 30.0  # seconds a single call may take before the server counts as unreachable
RRF_K = 60  # the engine's reciprocal-rank constant: the retriever's too
CANDIDATES = 100  # per list, for the engine's hybrid search
CACHED_PASSAGES = 8192  # passages kept from search results, so hits need no second round trip
CACHED_DOCUMENTS = 128  # documents' texts kept for citations
_VERSION = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)__v(?P<n>\d{6,})$")
_PASSAGE_FIELDS = ["id", "passage_id", "doc_id", "start", "end", "text"]


@functools.lru_cache(maxsize=1)
def analyzer() -> dict:
    """The passages' analyzer: as close as the engine allows to the local store's bm25s tokenizer
    (lower-cased, bm25s's English stop words, Snowball-stemmed). Milvus Standalone and Distributed
    apply all three; Milvus Lite 3.2 lower-cases and drops the stop words but does not stem."""
    from bm25s.stopwords import STOPWORDS_EN

    return {"tokenizer": "standard",
            "filter": ["lowercase", {"type": "stop", "stop_words": sorted(STOPWORDS_EN)},
                       {"type": "stemmer", "language": "english"}]}


def version_name(collection: str, number: int) -> str:
    return f"{collection}__v{number:06d}"


def docs_name(passages_collection: str) -> str:
    return f"{passages_collection}__docs"


def row_id(passage: Passage) -> int:
    """The passage's primary key: 63 bits of sha256 of its document, offsets and text, so the same
    passage keeps its key from build to build and an upsert of an unchanged one changes nothing."""
    key = f"{passage.doc_id}\0{passage.start}\0{passage.end}\0{passage.text}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def quoted(values: Sequence[str]) -> str:
    """A list of strings as a Milvus filter literal (``["a", "b\\"c"]``)."""
    return json.dumps(list(values), ensure_ascii=False)


def _first_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    return (str(text).strip().splitlines() or [type(err).__name__])[0][:200]


def _is_auth_failure(err: BaseException) -> bool:
    text = f"{getattr(err, 'code', '')} {_first_line(err)}".lower()
    return any(w in text for w in ("unauthenticated", "auth", "token", "credential", "permission denied", "1800"))


def _is_unreachable(err: BaseException) -> bool:
    text = f"{type(err).__name__} {_first_line(err)}".lower()
    return any(w in text for w in ("unavailable", "connect", "deadline", "timeout", "timed out", "refused",
                                   "not ready", "closed", "socket", "channel", "illegal uri"))


def _listening(url: str) -> bool:
    """Whether something accepts a TCP connection at the URL's host and port."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 19530)),
                                      timeout=2):
            return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def translated(address: StoreAddress) -> Iterator[None]:
    """Turn a server's refusal or silence into one line that names the address and says what to do."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except (MilvusException, ConnectionError, OSError) as err:
        if isinstance(err, (StoreUnavailableError, FileNotFoundError)):
            raise
        if address.is_server and _is_auth_failure(err):
            raise StoreUnavailableError(
                f"The Milvus server at {address.location} refused the token ({_first_line(err)}): set "
                f"{TOKEN_VARIABLE} to a valid token (user:password or an API key).") from None
        if address.is_server and _is_unreachable(err) and _listening(address.location):
            # Something answers there, yet the connection was refused: Milvus refuses a bad token this way.
            raise StoreUnavailableError(
                f"The Milvus server at {address.location} answers but refused the connection ({_first_line(err)}): "
                f"check the token in {TOKEN_VARIABLE} (and http or https).") from None
        if address.is_server and _is_unreachable(err):
            raise StoreUnavailableError(
                f"Cannot reach the Milvus server at {address.location} ({_first_line(err)}): start it, or check "
                "the address.") from None
        if not address.is_server and ("lock" in _first_line(err).lower() or _locked_elsewhere(address)):
            raise StoreUnavailableError(
                f"{address.location} is open in another process: Milvus Lite embedded serves one process; stop "
                f"it, or run `milvus-lite server` and use its http:// address.") from None
        if not address.is_server and "open local milvus failed" in _first_line(err).lower():
            raise StoreUnavailableError(
                f"Milvus Lite could not open {address.location} ({_first_line(err)}): check that this user can "
                "read and write it and the folder it is in, or choose another path.") from None
        raise


def _locked_elsewhere(address: StoreAddress) -> bool:
    """Whether another process holds Milvus Lite's lock on an embedded ``.db`` (its ``LOCK`` file). Asked
    only after this process failed to open it, so a lock held here already is not mistaken for another's."""
    try:
        import fcntl
    except ImportError:  # Windows: Milvus Lite's own message is all there is
        return False
    lock = Path(address.location).expanduser() / "LOCK"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def connect(address: StoreAddress, create: bool = False):
    """A client of the Milvus at ``address``; the token from ``QA_MILVUS_TOKEN`` for a server.

    Raises:
        IndexNotFoundError: an embedded ``.db`` that does not exist (and ``create`` is false).
        StoreUnavailableError: the server cannot be reached or refuses the token.
    """
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreUnavailableError(f"{address} is a Milvus store, and pymilvus is not installed: install it with "
                                    "pip install 'qa[milvus]'.") from None
    if address.is_server:
        uri, token = address.location, os.environ.get(TOKEN_VARIABLE, "")
    else:
        path = Path(address.location).expanduser()
        if not create and not path.exists():
            raise IndexNotFoundError(f"No index at {address} ({path} does not exist). Build one with: "
                                     f"qa index --docs DOCS --out {address}")
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise IndexWriteError(f"Cannot create the folder of {address} ({err.strerror or err}): choose "
                                      "another path.") from None
        uri, token = str(path.resolve()), ""
    with translated(address):
        # A server gets a connection of its own (a shared one outlives a restart of the server, broken);
        # an embedded .db is opened once per process, so its connection is shared.
        # A subchannel of its own, too: gRPC's shared one waits out its back-off after a server went away.
        client = MilvusClient(uri=uri, token=token, timeout=CALL_TIMEOUT, dedicated=address.is_server,
                              grpc_options={"grpc.use_local_subchannel_pool": 1})
        if address.is_server:
            client.list_collections(timeout=CALL_TIMEOUT)  # a wrong token fails here, not on the first search
    return client


def published(client, collection: str) -> str | None:
    """The collection the alias ``collection`` points to, or ``None`` when there is none."""
    aliases = client.list_aliases().get("aliases", [])
    if collection not in aliases:
        return None
    return client.describe_alias(collection)["collection_name"]


def versions(client, collection: str) -> list[str]:
    """The passages collections of ``collection``, oldest first."""
    found = [(int(m.group("n")), name) for name in client.list_collections()
             if (m := _VERSION.match(name)) and m.group("name") == collection]
    return [name for _, name in sorted(found)]


def text_parts(text: str) -> list[str]:
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]


def read_manifest_rows(client, docs_collection: str) -> dict | None:
    """The newest complete manifest written into a documents collection, or ``None``."""
    rows = client.query(docs_collection, filter=f'doc_id == {quoted([MANIFEST_DOC])[1:-1]}',
                        output_fields=["part", "text", "meta"])
    by_version: dict[int, dict[int, str]] = {}
    parts: dict[int, int] = {}
    for row in rows:
        meta = row["meta"]
        by_version.setdefault(meta["version"], {})[row["part"]] = row["text"]
        parts[meta["version"]] = meta["parts"]
    for version in sorted(by_version, reverse=True):
        texts = by_version[version]
        if len(texts) == parts[version]:
            return json.loads("".join(texts[i] for i in range(parts[version])))
    return None


def _rebuild_command(address: StoreAddress, manifest: dict | None) -> str:
    docs = (manifest or {}).get("docs_dir") or "DOCS"
    return f"qa index --docs {docs} --out {address}"


def _published_manifest(client, address: StoreAddress) -> tuple[str, dict]:
    """The published collection of ``address`` and its manifest (inside :func:`translated`).

    Raises:
        IndexNotFoundError: nothing is published at ``address``.
        CorruptIndexError: the published collection has no manifest.
    """
    current = published(client, address.collection)
    if current is None:
        raise IndexNotFoundError(f"No index at {address} (no collection {address.collection!r}). Build one "
                                 f"with: qa index --docs DOCS --out {address}")
    client.load_collection(docs_name(current))
    manifest = read_manifest_rows(client, docs_name(current))
    if manifest is None:
        raise CorruptIndexError(f"The index at {address} is damaged: collection {current!r} has no manifest. "
                                f"Rebuild it with: {_rebuild_command(address, None)}")
    return current, manifest


def read_store_manifest(address: StoreAddress) -> dict:
    """The published manifest of the Milvus store at ``address`` (see :func:`qa.stores.address.read_store_manifest`)."""
    client = connect(address)
    with translated(address):
        return _published_manifest(client, address)[1]


def open_store(address: StoreAddress, model: str | None = None, backend: str | None = None,
               check_documents: bool = True) -> "MilvusStore":
    """Load the Milvus store at ``address``, checking its manifest as the local store does."""
    client = connect(address)
    with translated(address):
        current, manifest = _published_manifest(client, address)
        check_manifest(address, manifest, model, backend, check_documents)
        client.load_collection(current)
    return MilvusStore(address, client, current, manifest)


def check_manifest(address: StoreAddress, manifest: dict, model: str | None, backend: str | None,
                   check_documents: bool) -> None:
    """Raise :class:`StaleIndexError` for another model, backend or format, or changed documents."""
    rebuild = _rebuild_command(address, manifest)
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise StaleIndexError(f"The index at {address} has format {manifest.get('format_version')}. "
                              f"Rebuild it with: {rebuild}")
    if model is not None and model != manifest["model"]:
        raise StaleIndexError(f"The index at {address} was built with model {manifest['model']!r}, not {model!r}. "
                              f"Rebuild it with: {rebuild} --model {model}")
    if backend is not None and backend != backend_of(manifest):
        raise StaleIndexError(f"The index at {address} was built with the {backend_of(manifest)} encoder backend, "
                              f"not {backend}. Rebuild it with: {rebuild} --backend {backend}")
    if check_documents:
        problem = stale_reason(manifest, ".")  # a Milvus manifest records the documents' absolute folder
        if problem:
            raise StaleIndexError(f"The index at {address} is out of date: {problem}. Update it with: {rebuild}")


class _Passages(Sequence):
    """The store's passages by row (primary key): fetched on demand, kept from search results."""

    def __init__(self, store: "MilvusStore"):
        self._store = store
        self._cache: OrderedDict[int, Passage] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, rows: Sequence[dict]) -> None:
        with self._lock:
            for row in rows:
                self._cache[int(row["id"])] = Passage(row["passage_id"], row["doc_id"], int(row["start"]),
                                                      int(row["end"]), row["text"])
                self._cache.move_to_end(int(row["id"]))
            while len(self._cache) > CACHED_PASSAGES:
                self._cache.popitem(last=False)

    def __getitem__(self, row: int) -> Passage:  # type: ignore[override]
        with self._lock:
            passage = self._cache.get(row)
        if passage is None:
            rows = self._store._call("query", self._store.collection, filter=f"id == {int(row)}",
                                     output_fields=_PASSAGE_FIELDS)
            if not rows:
                raise IndexError(f"no passage {row} in {self._store.address}")
            self.remember(rows)
            passage = self._cache[row]
        return passage

    def __len__(self) -> int:
        return int(self._store.manifest.get("passages", 0))

    def __iter__(self) -> Iterator[Passage]:
        """Every passage, in document order (evaluation reads them all)."""
        iterator = self._store._call("query_iterator", self._store.collection, batch_size=1000, filter="",
                                     output_fields=_PASSAGE_FIELDS)
        found = []
        with translated(self._store.address):
            while batch := iterator.next():
                found.extend(Passage(r["passage_id"], r["doc_id"], int(r["start"]), int(r["end"]), r["text"])
                             for r in batch)
            iterator.close()
        return iter(sorted(found, key=lambda p: (p.doc_id, p.start, p.end)))


class _Documents(Mapping):
    """The store's documents by id: ids from the manifest, texts fetched on demand (a few kept)."""

    def __init__(self, store: "MilvusStore"):
        self._store = store
        self._ids = [row["id"] for row in store.manifest["documents"]]
        self._known = set(self._ids)
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._known:
            raise KeyError(doc_id)
        with self._lock:
            doc = self._cache.get(doc_id)
            if doc is not None:
                self._cache.move_to_end(doc_id)
                return doc
        rows = self._store._call("query", docs_name(self._store.collection), filter=f"doc_id == {quoted([doc_id])[1:-1]}",
                                 output_fields=["part", "text", "meta"])
        rows.sort(key=lambda r: r["part"])
        if not rows or rows[0]["meta"].get("parts") != len(rows):
            raise CorruptIndexError(f"The index at {self._store.address} is damaged: the text of document "
                                    f"{doc_id!r} is incomplete. Rebuild it with: "
                                    f"{_rebuild_command(self._store.address, self._store.manifest)}")
        meta = rows[0]["meta"]
        doc = Document(id=doc_id, title=meta["title"], path=meta["path"], text="".join(r["text"] for r in rows),
                       pages=tuple(tuple(p) for p in meta.get("pages", ())), file=meta.get("file", ""),
                       source_hash=meta.get("source_hash", ""))
        with self._lock:
            self._cache[doc_id] = doc
            while len(self._cache) > CACHED_DOCUMENTS:
                self._cache.popitem(last=False)
        return doc

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class MilvusStore:
    """A :class:`~qa.stores.base.Store` in Milvus: the published version of one collection.

    It keeps serving the version it loaded; a rebuild keeps the version before it (so a running
    ``qa serve`` goes on answering), and removes older ones.

    Args:
        address: where it is.
        client: a connected ``pymilvus.MilvusClient``.
        collection: the passages collection (a version, not the alias).
        manifest: its manifest.
    """

    def __init__(self, address: StoreAddress, client, collection: str, manifest: dict):
        self.address = address
        self.client = client
        self.collection = collection
        self.manifest = manifest
        self.passages = _Passages(self)
        self.documents = _Documents(self)
        self._hnsw = manifest.get("index_type") == "hnsw"

    def _call(self, method: str, *args, **kwargs):
        with translated(self.address):
            return getattr(self.client, method)(*args, **kwargs)

    def _filter(self, doc_ids: Sequence[str] | None) -> str:
        return "" if doc_ids is None else f"doc_id in {quoted(doc_ids)}"

    def _dense_params(self) -> dict:
        return {"metric_type": "IP", **({"params": {"ef": max(HNSW_EF_SEARCH, CANDIDATES)}} if self._hnsw else {})}

    def _rows(self, results) -> list[tuple[int, float]]:
        hits = list(results[0]) if results else []
        self.passages.remember([h["entity"] | {"id": h["id"]} for h in hits])
        return [(int(h["id"]), float(h["distance"])) for h in hits]

    def dense_search(self, query_vector: np.ndarray, k: int,
                     doc_ids: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` rows of highest inner product with ``query_vector``, best first, as ``(row, score)``."""
        if k <= 0 or (doc_ids is not None and not doc_ids):
            return []
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1).tolist()
        return self._rows(self._call("search", self.collection, data=[vector], anns_field="dense", limit=k,
                                     filter=self._filter(doc_ids), search_params=self._dense_params(),
                                     output_fields=_PASSAGE_FIELDS[1:]))

    def keyword_search(self, query_text: str, k: int,
                       doc_ids: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` best BM25 matches of ``query_text`` (the engine's BM25), best first.

        Only the order means anything: Milvus Lite's BM25 scores can be negative.
        """
        if k <= 0 or not query_text.strip() or (doc_ids is not None and not doc_ids):
            return []
        return self._rows(self._call("search", self.collection, data=[query_text], anns_field="sparse", limit=k,
                                     filter=self._filter(doc_ids), search_params={"metric_type": "BM25"},
                                     output_fields=_PASSAGE_FIELDS[1:]))

    def hybrid_search(self, query_vector: np.ndarray, query_text: str, k: int,
                      doc_ids: Sequence[str] | None = None, candidates: int = CANDIDATES) -> list[tuple[int, float]]:
        """Dense and BM25 fused by the engine's reciprocal-rank fusion (k=60), in one call, best first.

        The retriever fuses the two lists itself (it needs each passage's rank in each, for the
        answer's features), with the same formula; this is the engine's side of it, for clients that
        only want the fused list.
        """
        from pymilvus import AnnSearchRequest, RRFRanker

        if k <= 0 or (doc_ids is not None and not doc_ids):
            return []
        expr = self._filter(doc_ids)
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1).tolist()
        requests = [AnnSearchRequest(data=[vector], anns_field="dense", param=self._dense_params(),
                                     limit=max(k, candidates), expr=expr or None)]
        if query_text.strip():
            requests.append(AnnSearchRequest(data=[query_text], anns_field="sparse", param={"metric_type": "BM25"},
                                             limit=max(k, candidates), expr=expr or None))
        return self._rows(self._call("hybrid_search", self.collection, requests, ranker=RRFRanker(RRF_K), limit=k,
                                     output_fields=_PASSAGE_FIELDS[1:]))

