"""Reading an uploaded document in a child process, within a time and a memory limit.

pypdf and python-docx are pure Python: while they parse, they hold the interpreter the chat's
threads answer with, and a crafted file can keep them at it for minutes or make them take gigabytes.
So an upload is read in a child process (forked from a server started once, with the readers already
imported, so each read starts in milliseconds): a read that passes ``read_seconds`` is killed, one
that asks for more than ``read_memory_bytes`` fails its allocation, and a text over
``document_chars`` characters or ``document_passages`` passages is refused before it comes back.

Example:
    >>> doc = read_checked(Path("/tmp/upload/minutes.docx"), Path("/tmp/upload"), Limits())
    >>> doc.file
    'minutes.docx'
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

from qa.app.limits import Limits
from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import DocumentError, load_document
from qa.types import Document

logger = logging.getLogger(__name__)

# Imported once by the fork server, so that each child starts with them.
PRELOAD = ["qa.app.reading", "pypdf", "docx", "nupunkt"]


def check_text(doc: Document, limits: Limits, chunking: ChunkConfig | None = None) -> None:
    """Refuse a document whose text is over ``limits.document_chars`` characters, or that makes over
    ``limits.document_passages`` passages with ``chunking``.

    Raises:
        DocumentError: the first limit it is over.
    """
    if len(doc.text) > limits.document_chars:
        raise DocumentError(f"its text is {len(doc.text):,} characters, over the {limits.document_chars:,} a "
                            "document may have")
    passages = len(chunk_document(doc, chunking or ChunkConfig()))
    if passages > limits.document_passages:
        raise DocumentError(f"it makes {passages:,} passages, over the {limits.document_passages:,} a document "
                            "may have")


def _limit_memory(extra: int) -> None:
    """Let this process's address space grow by at most ``extra`` bytes (where the platform allows)."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        return  # not Linux: the time limit still holds
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = now + extra if hard == resource.RLIM_INFINITY else min(hard, now + extra)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _read_in_child(conn, path: str, root: str, limits: Limits, chunking: ChunkConfig | None) -> None:
    """The child's side: read, check, send ``("ok", document)`` or ``("refused" | "failed", message)``."""
    try:
        _limit_memory(limits.read_memory_bytes)
        doc = load_document(path, root=root)
        check_text(doc, limits, chunking)
        conn.send(("ok", doc))
    except MemoryError:
        conn.send(("refused", f"reading it needs more than the {limits.read_memory_bytes / 2**20:,.0f} MB of "
                              "memory a document may take"))
    except (DocumentError, OSError) as err:
        conn.send(("refused", str(err)))
    except Exception as err:  # noqa: BLE001 - a reader's fault: said to the parent, which logs it
        conn.send(("failed", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


def _context():
    """A fork server where the platform has one (a fork of the threaded server itself is unsafe), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def read_checked(path: Path, root: Path, limits: Limits, chunking: ChunkConfig | None = None) -> Document:
    """The document at ``path`` (named relative to ``root``), read and checked in a child process.

    Raises:
        DocumentError: it can't be read, its reading took more than ``limits.read_seconds`` or more
            memory than ``limits.read_memory_bytes``, or its text is over the limits (:func:`check_text`).
    """
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(sender, str(path), str(root), limits, chunking),
                            name="qa-read-upload", daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.read_seconds):
            raise DocumentError(f"reading it took longer than the {limits.read_seconds:,.0f} s a document may take")
        try:
            kind, value = receiver.recv()
        except EOFError:
            child.join(5)
            raise DocumentError(f"its reader stopped (status {child.exitcode}), most likely out of the "
                                f"{limits.read_memory_bytes / 2**20:,.0f} MB of memory a document may take") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if kind == "ok":
        return value
    if kind == "failed":
        logger.error("reading %s failed: %s", path, value)
        raise DocumentError("its reader failed (see the server's log)")
    raise DocumentError(value)
