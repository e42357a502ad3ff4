"""Where a store lives, written as one string, and the backend that opens it.

The same address works for ``qa index --out``, ``--index`` of ``qa serve``, ``qa ask``, ``qa search``
and ``qa eval``, and for ``QA.load`` and ``Retriever.load``:

- a folder path (``embeddings``): the local FAISS + bm25s store (:mod:`qa.stores.local`), the default;
- ``milvus:PATH.db``: Milvus Lite embedded in this process, its data in ``PATH.db``;
- ``http://HOST:PORT`` or ``https://HOST:PORT``: a Milvus server (Milvus Lite's ``milvus-lite server``,
  Standalone or Distributed); its token, if it needs one, comes from the environment variable
  ``QA_MILVUS_TOKEN``, never from a flag or the manifest.

A Milvus address may end in ``#NAME`` to name the collection (default ``qa``), so one server holds
the indexes of several corpora.

A backend is a package with a ``store`` side, ``open_store(address, model, backend, check_documents)``
and ``read_store_manifest(address)``, and a ``build`` side, ``build_store(docs_dir, address, **options)``;
adding one (Qdrant, OpenSearch) is one new package and one line in :data:`SCHEMES`.

Example:
    >>> parse_address("milvus:./qa.db#papers")
    StoreAddress(kind='milvus', location='./qa.db', collection='papers', text='milvus:./qa.db#papers')
    >>> parse_address("embeddings").kind
    'local'
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from qa.errors import InvalidInput

TOKEN_VARIABLE = "QA_MILVUS_TOKEN"
DEFAULT_COLLECTION = "qa"


class Backend(NamedTuple):
    """The modules of a kind of store (see the module docstring)."""

    store: str  # open_store, read_store_manifest
    build: str  # build_store


# Address prefix -> the store it names.
SCHEMES = {"milvus": Backend("qa.stores.milvus.store", "qa.stores.milvus.build")}
URL_SCHEMES = {"http": "milvus", "https": "milvus"}  # a server URL: Milvus
LOCAL = Backend("qa.stores.local.index", "qa.stores.local.build")  # a folder
_COLLECTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,150}$")


@dataclass(frozen=True)
class StoreAddress:
    """A parsed store address.

    Attributes:
        kind: ``"local"`` or a key of :data:`SCHEMES` (``"milvus"``).
        location: the folder, the ``.db`` path, or the server URL (without ``#NAME``).
        collection: the collection name for a server store; ``None`` for a local one.
        text: the address as given (for messages).
    """

    kind: str
    location: str
    collection: str | None
    text: str

    @property
    def is_server(self) -> bool:
        """Whether the store is reached over the network (its URL is what a message names)."""
        return self.location.lower().startswith(("http://", "https://"))

    def __str__(self) -> str:
        return self.text


def parse_address(address: str | os.PathLike) -> StoreAddress:
    """Parse a store address (see the module docstring).

    Raises:
        InvalidInput: a Milvus address without a path or host, or a collection name Milvus refuses.
    """
    if isinstance(address, os.PathLike):
        return StoreAddress("local", os.fspath(address), None, os.fspath(address))
    text = str(address)
    scheme, sep, rest = text.partition(":")
    if sep and scheme.lower() in URL_SCHEMES and rest.startswith("//"):
        kind, location = URL_SCHEMES[scheme.lower()], text
        if not rest[2:].split("#")[0].strip("/"):
            raise InvalidInput(f"The store address {text!r} names no host: write it as http://HOST:PORT.")
    elif sep and scheme in SCHEMES:
        kind, location = scheme, rest
        if not rest.split("#")[0]:
            raise InvalidInput(f"The store address {text!r} names no file: write it as {scheme}:PATH.db, "
                               f"e.g. {scheme}:./qa.db.")
    else:
        return StoreAddress("local", text, None, text)
    location, _, collection = location.partition("#")
    collection = collection or DEFAULT_COLLECTION
    if location.lower().startswith(("http://", "https://")):
        _check_port(location, text)
    elif not location.endswith(".db"):
        raise InvalidInput(f"The store address {text!r} names a Milvus Lite file that does not end in .db, which "
                           f"Milvus Lite requires: write it as {scheme}:{location.rstrip('/')}.db.")
    if not _COLLECTION.match(collection):
        raise InvalidInput(f"{collection!r} (after # in {text!r}) is not a collection name: use letters, digits "
                           "and underscores, starting with a letter, e.g. #papers.")
    if location.lower().startswith(("http://", "https://")):
        location = location.rstrip("/")
    return StoreAddress(kind, location, collection, text)


def _check_port(url: str, text: str) -> None:
    """Refuse a server URL whose port is not a number from 1 to 65535.

    Raises:
        InvalidInput: e.g. ``http://127.0.0.1:99999``.
    """
    from urllib.parse import urlsplit

    try:
        port = urlsplit(url).port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"The store address {text!r} has no valid port: a port is a number from 1 to 65535, "
                           "e.g. http://127.0.0.1:19530.")


def _backend(address: StoreAddress, side: str):
    """The module of the store at ``address`` that opens it (``side`` ``"store"``) or builds it (``"build"``)."""
    return importlib.import_module(getattr(LOCAL if address.kind == "local" else SCHEMES[address.kind], side))


def open_store(address: str | os.PathLike, model: str | None = None, backend: str | None = None,
               check_documents: bool = True):
    """Load the store at ``address``, checking its manifest (model, backend, documents) as
    :meth:`qa.stores.local.index.Index.load` does.

    Raises:
        IndexNotFoundError, StaleIndexError, CorruptIndexError: as the local store raises them.
        StoreUnavailableError: a server store that cannot be reached or refuses the token.
    """
    parsed = parse_address(address)
    return _backend(parsed, "store").open_store(parsed, model=model, backend=backend, check_documents=check_documents)


def build_store(docs_dir: str | Path, address: str | os.PathLike, **options):
    """Build or update the store at ``address`` from ``docs_dir``; returns :class:`~qa.stores.jobs.BuildStats`.

    ``options`` are those of :func:`qa.stores.local.build.build_index` (model, chunk_config, encoder, backend,
    incremental, show_progress, batch_size).
    """
    parsed = parse_address(address)
    return _backend(parsed, "build").build_store(docs_dir, parsed, **options)


def read_store_manifest(address: str | os.PathLike) -> dict:
    """The manifest of the store at ``address`` (model, backend, chunking, documents, ``docs_dir``).

    Raises:
        IndexNotFoundError: no store there.
    """
    parsed = parse_address(address)
    return _backend(parsed, "store").read_store_manifest(parsed)


def docs_dir_of_store(address: str | os.PathLike, manifest: dict) -> Path:
    """The documents folder a store was built from (a local store records it relative to itself)."""
    from qa.stores.manifest import docs_dir_of

    parsed = parse_address(address)
    return docs_dir_of(parsed.location if parsed.kind == "local" else ".", manifest)


def built_from(address: str | os.PathLike) -> Path | None:
    """The documents folder the store at ``address`` was built from (resolved); ``None`` when there is no
    store there, it records no folder, or it is unreadable (a build replaces it whole anyway).

    Raises:
        StoreUnavailableError: a Milvus store that can't be reached.
    """
    from qa.stores.base import IndexNotFoundError, StaleIndexError

    try:
        manifest = read_store_manifest(address)
    except (IndexNotFoundError, StaleIndexError):
        return None
    return docs_dir_of_store(address, manifest) if manifest.get("docs_dir") else None
