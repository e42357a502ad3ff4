"""What the server accepts from a visitor, each limit refused before the work it would cost is done.

Where each is enforced:

- ``upload_bytes``: one uploaded file, by Gradio as it streams in (``launch(max_file_size=...)``) and
  again by the upload check; a request carrying files may hold ``UPLOAD_FILES_AT_ONCE`` of them
  (``upload_request_bytes``), refused by :class:`qa.app.http_limits.BodyLimit` before it is read;
- ``request_bytes``: the body of any other request (a question, the chat so far, a document id),
  refused by :class:`qa.app.http_limits.BodyLimit` from its Content-Length, or as soon as the bytes
  streamed in pass it;
- ``question_chars`` and ``id_chars``: a question and a document id, checked when the request is
  handled (the pipeline reads at most ``MAX_QUESTION_CHARS`` of a question; no path is longer than 4,096);
- ``archive``: a .docx's parts, unpacked bytes and compression ratio, from its zip directory
  (:mod:`qa.ingest.archive`), before it is unpacked;
- ``document_chars`` and ``document_passages``: an uploaded document's text, checked as it is read,
  which happens in a child process given ``read_seconds`` and ``read_memory_bytes``
  (:mod:`qa.app.reading`);
- ``viewer_format_chars``: the viewer formats Markdown up to this many characters and shows longer
  documents as plain text, so a citation click renders in bounded time;
- ``waiting_changes``: uploads, deletes and re-scans waiting while one is indexed; more are refused
  with a message to try again;
- ``sessions``: the visitors' sessions whose state Gradio keeps in memory (``launch(state_session_capacity=...)``);
  past it the oldest session's is dropped. Each keeps what its last answer returned, so without this bound
  the server grows with every new visitor and every API call (``python -m benchmarks.soak`` shows it).

Example:
    >>> Limits(upload_bytes=10 * 2**20).upload_request_bytes
    42991616
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.answering.question import MAX_QUESTION_CHARS  # the most of a question the pipeline reads
from qa.ingest.archive import ArchiveLimits

MAX_UPLOAD_BYTES = 25 * 2**20  # one uploaded file
UPLOAD_FILES_AT_ONCE = 4  # files one upload request may carry at the largest size (the page sends a drop in one)
FORM_OVERHEAD_BYTES = 2**20  # a multipart request's own fields and boundaries, beside its files
MAX_REQUEST_BYTES = 4 * 2**20  # a long chat restored from the browser is about 1 MB
MAX_ID_CHARS = 4096  # a document id is a relative path: none is longer than Linux's PATH_MAX
MAX_DOCUMENT_CHARS = 2_000_000  # about 1,000 pages of text
MAX_DOCUMENT_PASSAGES = 5_000  # 2,000,000 characters make about 3,300 passages of 800 with an overlap of 200
READ_SECONDS = 120.0  # pypdf reads a long PDF at tens of pages a second
READ_MEMORY_BYTES = 2**30  # address space a document's reading may add to the reading process
VIEWER_FORMAT_CHARS = 100_000  # longer Markdown is shown as plain text: markdown-it is superlinear on some inputs
WAITING_CHANGES = 2  # changes queued behind the one being indexed
MAX_SESSIONS = 500  # sessions whose state is kept: Gradio's default, 10,000, is about a gigabyte of answers
DELETE_CACHE = (600, 3600)  # Gradio's cache: every 10 minutes, delete files over an hour old


@dataclass(frozen=True)
class Limits:
    """The server's limits (see the module docstring for where each is enforced)."""

    upload_bytes: int = MAX_UPLOAD_BYTES
    request_bytes: int = MAX_REQUEST_BYTES
    question_chars: int = MAX_QUESTION_CHARS
    id_chars: int = MAX_ID_CHARS
    document_chars: int = MAX_DOCUMENT_CHARS
    document_passages: int = MAX_DOCUMENT_PASSAGES
    read_seconds: float = READ_SECONDS
    read_memory_bytes: int = READ_MEMORY_BYTES
    viewer_format_chars: int = VIEWER_FORMAT_CHARS
    waiting_changes: int = WAITING_CHANGES
    sessions: int = MAX_SESSIONS
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)

    def __post_init__(self) -> None:
        for name in ("upload_bytes", "request_bytes", "question_chars", "id_chars", "document_chars",
                     "document_passages", "read_seconds", "read_memory_bytes", "sessions"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, got {getattr(self, name)!r}.")
        if self.waiting_changes < 0 or self.viewer_format_chars < 0:
            raise ValueError("waiting_changes and viewer_format_chars must be 0 or more.")

    @property
    def upload_request_bytes(self) -> int:
        """The largest body of a request that carries files (``multipart/form-data``)."""
        return UPLOAD_FILES_AT_ONCE * self.upload_bytes + FORM_OVERHEAD_BYTES


def shown(text: str, chars: int = 60) -> str:
    """``text`` as a message may quote it: its ``repr``, cut to about ``chars`` characters."""
    return repr(text) if len(text) <= chars else f"{text[:chars]!r}… ({len(text):,} characters)"


def limits_help(limits: Limits = Limits()) -> str:
    """The limits in words, one line each, for ``qa serve --help``."""
    a = limits.archive
    rows = [
        ("an uploaded file", f"{limits.upload_bytes / 2**20:g} MB (--max-upload-mb); a request carrying files "
                             f"may hold {UPLOAD_FILES_AT_ONCE} such files"),
        ("any other request", f"{limits.request_bytes / 2**20:g} MB of body (--max-request-mb), refused before "
                              "it is read"),
        ("a question, an id", f"{limits.question_chars:,} characters; {limits.id_chars:,} characters"),
        ("a .docx", f"{a.max_members:,} parts, {a.max_unpacked_bytes / 2**20:g} MB unpacked, no part over "
                    f"{a.ratio_floor_bytes / 2**20:g} MB packed more than {a.max_ratio:g} times (from its zip "
                    "directory, before it is unpacked)"),
        ("an uploaded document", f"{limits.document_chars:,} characters (--max-document-chars) and "
                                 f"{limits.document_passages:,} passages, read within {limits.read_seconds:g} s "
                                 f"(--upload-read-seconds) and {limits.read_memory_bytes / 2**20:,.0f} MB of memory"),
        ("the viewer", f"Markdown formatted up to {limits.viewer_format_chars:,} characters, plain text beyond"),
        ("changes waiting", f"{limits.waiting_changes} uploads or deletes behind the one being indexed "
                            "(--upload-queue); more are refused"),
        ("sessions kept", f"the state of the {limits.sessions:,} latest visitors' sessions (--max-sessions); an "
                          "older one's is dropped (its chat stays in the browser)"),
        ("Gradio's file cache", f"handled uploads deleted at once; every {DELETE_CACHE[0] // 60} minutes, files "
                                f"over {DELETE_CACHE[1] // 60} minutes old"),
    ]
    import textwrap

    lines = ["limits (each refused with one line saying what to do):"]
    for what, value in rows:
        wrapped = textwrap.wrap(value, 76) or [""]
        lines.append(f"  {what:<22}{wrapped[0]}")
        lines += [f"  {'':<22}{more}" for more in wrapped[1:]]
    return "\n".join(lines)
