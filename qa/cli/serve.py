"""``qa serve`` and ``python app.py``: load (or build) the index, load the models, start the chat app.

Every argument is checked, and the address is checked to be free, before any model loads.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from qa.app.cache import DEFAULT_MAX_BYTES, DEFAULT_SIZE
from qa.app.defaults import DEFAULT_BUSY, DEFAULT_CONCURRENCY, DEFAULT_HOST, DEFAULT_PORT, TITLE
from qa.app.feedback import DEFAULT_FEEDBACK
from qa.app.limits import (MAX_DOCUMENT_CHARS, MAX_REQUEST_BYTES, MAX_SESSIONS, MAX_UPLOAD_BYTES, READ_SECONDS,
                           WAITING_CHANGES, Limits, limits_help)
from qa.cli.common import (DEFAULT_DOCS, DEFAULT_INDEX, at_least, check_reader, more_than_zero, port_number,
                           probability, reader_runtime_arg, zero_or_more)
from qa.reading.names import DEFAULT_READER, READER_HELP
from qa.text import plural

if TYPE_CHECKING:
    from qa.answering.pipeline import QA

logger = logging.getLogger(__name__)

def default_index(docs: str | Path) -> Path:
    """Where a documents folder's index lives: ``embeddings/`` beside the bundled ``seeds/`` corpus,
    else ``.qa-index/<folder name>`` under the current directory."""
    docs = Path(docs)
    if docs.resolve() == Path(DEFAULT_DOCS).resolve():
        return docs.parent / DEFAULT_INDEX
    return Path(".qa-index") / docs.resolve().name


def served(docs: str | Path, index: str | Path | None) -> tuple[Path, str | Path]:
    """The documents folder and index the app serves for ``--docs`` and ``--index``: for the bundled
    corpus, its working copy (:mod:`qa.app.demo`: uploads and deletes must not change tracked files),
    with the copy of the shipped index unless another index was named; else the folder given, and
    ``--index`` or the folder's default index (a folder, or a Milvus address kept as text)."""
    if Path(docs).resolve() != Path(DEFAULT_DOCS).resolve() or not Path(docs).is_dir():
        return Path(docs), index or default_index(docs)
    from qa.app.demo import demo_copy

    shipped = default_index(docs)
    copy_docs, copy_index = demo_copy(docs, shipped)
    named = index is not None and Path(index).resolve() != shipped.resolve()
    return copy_docs, index if named else copy_index


def _settings_of(index: str | Path) -> dict:
    """The ``build_index`` arguments an existing index was built with (model, backend, chunking); ``{}``
    when there is no index, so a first build takes the defaults."""
    from qa.ingest.chunking import ChunkConfig
    from qa.stores.address import read_store_manifest
    from qa.stores.base import IndexNotFoundError
    from qa.stores.manifest import backend_of

    try:
        manifest = read_store_manifest(index)
    except IndexNotFoundError:
        return {}
    settings = {"model": manifest["model"], "backend": backend_of(manifest)}  # old manifests: torch
    if "chunking" in manifest:
        chunking = manifest["chunking"]
        settings["chunk_config"] = ChunkConfig(chunking["chunk_size"], chunking["chunk_overlap"])
    return settings


def load_qa(
    docs: str | Path, index: str | Path, reader: str | Path | None = None, threshold: float | None = None,
    reader_runtime: str | None = None, busy: int = 0,
) -> "QA":
    """Load the index (building or updating it first when it is missing or stale) and the readers: ``reader``
    and, unless it is the fast one, the fast reader beside it (a visitor may choose it, and it reads while
    more than ``busy`` questions are being answered or wait; 0: only when chosen).

    A stale index is rebuilt with the model, backend and chunking its manifest records; a missing one
    is built with the defaults.
    """
    from qa.answering.pipeline import QA
    from qa.errors import InvalidInput, MissingPath
    from qa.stores.address import build_store, built_from, docs_dir_of_store
    from qa.stores.base import IndexNotFoundError, StaleIndexError

    from qa.reading.reader import READER_DIRS, reader_dir

    runtime = {"reader_runtime": reader_runtime} if reader_runtime else {}
    fast = READER_DIRS["fast"]
    if (fast / "config.json").is_file() and reader_dir(reader).resolve() != fast.resolve():
        runtime.update(fallback="fast", busy=busy)

    try:
        qa = QA.load(index, reader=reader, threshold=threshold, **runtime)
    except (IndexNotFoundError, StaleIndexError) as err:
        logger.debug("%s", err)  # the line below says what happens about it
        if not Path(docs).is_dir():
            raise MissingPath(f"No documents folder at {docs}: pass --docs DIR.") from err
        before = built_from(index)  # an out-of-date index of another folder is not rebuilt from this one
        if before is not None and before != Path(docs).resolve():
            raise InvalidInput(f"The index at {index} holds the documents of {before}, not {docs}: pass --index "
                               f"with another folder (or leave it out) to serve {docs}.") from None
        state = "missing" if isinstance(err, IndexNotFoundError) else "out of date"
        logger.info("The index at %s is %s: building it from %s ...", index, state, docs)
        stats = build_store(docs, index, show_progress=True, **_settings_of(index))
        logger.info("Indexed %s (%s) in %.1f s.", plural(stats.documents, "document"),
                    plural(stats.passages, "passage"), stats.seconds)
        return QA.load(index, reader=reader, threshold=threshold, **runtime)
    manifest = qa.retriever.index.manifest
    built_from = docs_dir_of_store(index, manifest)
    if manifest.get("docs_dir") and Path(docs).is_dir() and built_from != Path(docs).resolve():
        raise InvalidInput(f"The index at {index} holds the documents of {built_from}, not {docs}: "
                           f"pass --index with another folder (or leave it out) to serve {docs}.")
    return qa


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``qa serve`` and ``python app.py``."""
    p.add_argument("--docs", default=DEFAULT_DOCS,
                   help="folder of .txt/.md/.html/.pdf documents to serve (default: seeds, the bundled corpus, served "
                        "as a copy in .qa-demo/ so that uploads and deletes leave it as it is)")
    p.add_argument("--index", default=None,
                   help="index folder, milvus:PATH.db or http://HOST:PORT, built or updated on start when missing or "
                        "stale (default: embeddings for seeds, else .qa-index/<docs folder name> under the current "
                        "directory)")
    p.add_argument("--reader", default=None, metavar="NAME|DIR", help=f"{READER_HELP} (default: {DEFAULT_READER})")
    p.add_argument("--threshold", type=probability, default=None,
                   help="default answer threshold, 0-1 (default: calibrated); users can change it in Settings")
    p.add_argument("--busy", type=at_least(0), default=DEFAULT_BUSY,
                   help="when more questions than this are being answered or wait their turn, a question that "
                        "names no reader is read by the fast reader, and its answer says so; 0: only when chosen "
                        f"(default: {DEFAULT_BUSY})")
    reader_runtime_arg(p)
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 for the network)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (off by default)")
    p.add_argument("--feedback", default=str(DEFAULT_FEEDBACK), metavar="FILE",
                   help="JSON-lines file that thumbs up/down are appended to, one row each "
                        "(readable by `qa eval`; default: feedback/feedback.jsonl in the current directory)")
    p.add_argument("--concurrency", type=at_least(1), default=DEFAULT_CONCURRENCY,
                   help=f"questions answered at once; the rest wait in the queue (default: {DEFAULT_CONCURRENCY})")
    p.add_argument("--cache-size", type=at_least(0), default=DEFAULT_SIZE,
                   help=f"answers remembered for repeated questions, 0 to turn off (default: {DEFAULT_SIZE})")
    p.add_argument("--cache-mb", type=zero_or_more, default=DEFAULT_MAX_BYTES / 2**20,
                   help=f"memory the remembered answers may take, in MiB (default: {DEFAULT_MAX_BYTES // 2**20})")
    p.add_argument("--title", default=TITLE, help=f"page title (default: {TITLE!r})")
    p.add_argument("--max-upload-mb", type=more_than_zero, default=MAX_UPLOAD_BYTES / 2**20,
                   help="largest document the page accepts for upload, in MiB "
                        f"(default: {MAX_UPLOAD_BYTES // 2**20}); uploads are saved in --docs and indexed")
    p.add_argument("--max-request-mb", type=more_than_zero, default=MAX_REQUEST_BYTES / 2**20,
                   help="largest request body other than an upload, in MiB, refused before it is read "
                        f"(default: {MAX_REQUEST_BYTES // 2**20})")
    p.add_argument("--max-sessions", type=at_least(1), default=MAX_SESSIONS,
                   help="visitors' sessions whose state is kept in memory; the oldest one's is dropped past it "
                        f"(default: {MAX_SESSIONS})")
    p.add_argument("--max-document-chars", type=at_least(1), default=MAX_DOCUMENT_CHARS,
                   help=f"most characters of text an uploaded document may have (default: {MAX_DOCUMENT_CHARS:,})")
    p.add_argument("--upload-read-seconds", type=more_than_zero, default=READ_SECONDS,
                   help=f"longest an uploaded document may take to read, in seconds (default: {READ_SECONDS:.0f})")
    p.add_argument("--upload-queue", type=at_least(0), default=WAITING_CHANGES,
                   help="uploads and deletes that may wait while one is indexed; more are refused "
                        f"(default: {WAITING_CHANGES})")


def check_address(host: str, port: int) -> None:
    """Raise :class:`InvalidInput` unless ``host`` resolves and ``port`` is free on it (0: any free port).

    A server already listening there makes the bind fail even with ``SO_REUSEADDR``, which only lets the
    port be reused while old connections close (as the server itself will bind it).
    """
    from qa.errors import InvalidInput

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise InvalidInput(f"Cannot resolve the host {host!r} ({err}): pass --host with an address of this "
                           f"machine, e.g. {DEFAULT_HOST} or 0.0.0.0.") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise InvalidInput(f"Port {port} on {host} is in use: stop the server there or pass --port "
                                   "with another port.") from None
            raise InvalidInput(f"Cannot listen on {host}:{port} ({err.strerror}): pass --host with an "
                               f"address of this machine (e.g. {DEFAULT_HOST}) or another --port.") from None


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad arguments before anything loads (numbers out of range are refused while parsing, by their types).

    Raises:
        InvalidInput: a feedback file that is a folder, a host that does not resolve, a port in use.
        MissingPath: a ``--reader`` that is neither a shipped reader's name nor a folder.
    """
    from qa.errors import InvalidInput

    check_reader(args.reader)
    if Path(args.feedback).is_dir():
        raise InvalidInput(f"--feedback names a folder ({args.feedback}): pass a file, e.g. {DEFAULT_FEEDBACK}.")
    check_address(args.host, args.port)


def limits_of(args: argparse.Namespace) -> Limits:
    """The server's limits: the options given, the defaults for the rest."""
    return Limits(upload_bytes=int(args.max_upload_mb * 2**20), request_bytes=int(args.max_request_mb * 2**20),
                  document_chars=args.max_document_chars, read_seconds=args.upload_read_seconds,
                  waiting_changes=args.upload_queue, sessions=args.max_sessions)


def run(args: argparse.Namespace) -> int:
    """``qa serve``: check, load, warm up, then serve until stopped."""
    check_arguments(args)
    from qa.app.demo import is_demo_copy
    from qa.app.documents import DocumentLibrary
    from qa.app.feedback import FeedbackLog
    from qa.app.ui import BUNDLED_EXAMPLES, build_app, launch  # gradio loads here

    docs, index = served(args.docs, args.index)
    qa = load_qa(docs, index, args.reader, args.threshold, getattr(args, "reader_runtime", None),
                 getattr(args, "busy", 0))
    server: dict = {}
    # Questions waiting in the server's queue count towards --busy (Gradio's queue exists once launched).
    qa.waiting = lambda: len(getattr(server.get("app"), "_queue", None) or ())
    if is_demo_copy(docs):
        logger.info("Serving a copy of the bundled documents, in %s: uploads and deletes change the copy, not %s "
                    "(delete %s to start again from %s).", docs, args.docs, docs.parent, args.docs)
    logger.info("Loading the models ...")
    for name in qa.reader_names:  # load the encoder and readers now, not on the first user's question
        qa.ask("warm up", top_k=1, reader=name)
    bundled = Path(args.docs).resolve() == Path(DEFAULT_DOCS).resolve()
    app = build_app(qa, FeedbackLog(args.feedback), BUNDLED_EXAMPLES if bundled else (), args.title,
                    corpus_name=Path(args.docs).resolve().name, cache_size=args.cache_size,
                    cache_bytes=int(args.cache_mb * 2**20),
                    library=DocumentLibrary(qa, docs, index, limits=limits_of(args)))
    server["app"] = app
    launch(app, args.host, args.port, args.share, args.concurrency, block=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``qa serve`` to the ``qa`` command."""
    p = sub.add_parser(
        "serve", help="start the browser chat app (and its /ask API)",
        description=textwrap.fill("Start the chat app on http://HOST:PORT/. The index is loaded, or built when "
                                  "missing or stale. Thumbs up/down are appended to --feedback. API: "
                                  "Client(url).predict(question, api_name='/ask').", 100),
        epilog=limits_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
