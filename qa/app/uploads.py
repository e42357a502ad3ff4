"""Checks on a file uploaded to the documents folder, before anything touches the disk.

A file is accepted only when all of these hold; each refusal is one line that says what to do:

- its name is a plain file name (no folder part, no ``..``, not hidden, no control characters) with
  one of :data:`UPLOAD_SUFFIXES`, so it cannot land outside the folder or be skipped as hidden;
- it holds 1 to ``limits.upload_bytes`` bytes;
- its content is of the type its extension says: a PDF starts with ``%PDF-``, a ``.docx`` is a zip
  holding ``word/document.xml`` whose directory says it unpacks within ``limits.archive`` (no zip
  bomb), text (``.txt``, ``.md``, ``.html``) decodes as UTF-8 (or by its byte order mark) with no NUL bytes;
- and it loads as a document with text, exactly as indexing will load it (in a temporary folder), in
  a child process within ``limits.read_seconds`` and ``limits.read_memory_bytes``, its text within
  ``limits.document_chars`` characters and ``limits.document_passages`` passages (:mod:`qa.app.reading`).

Example:
    >>> doc = check_upload("notes.txt", b"The ferry leaves at nine.")
    >>> doc.title
    'Notes'
"""

from __future__ import annotations

import logging
import tempfile
import unicodedata
from pathlib import Path

from qa.app.limits import MAX_UPLOAD_BYTES, Limits
from qa.errors import InvalidInput
from qa.ingest.archive import ArchiveError, ArchiveLimits, NotAnArchive, check_archive
from qa.ingest.chunking import ChunkConfig
from qa.ingest.documents import DOCX_SUFFIXES, HTML_SUFFIXES, PDF_SUFFIXES, TEXT_SUFFIXES, DocumentError, \
    decode_text
from qa.types import Document

logger = logging.getLogger(__name__)

UPLOAD_SUFFIXES = tuple(sorted(TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES))
MAX_NAME_BYTES = 255  # the longest file name most file systems take
__all__ = ["UPLOAD_SUFFIXES", "InvalidUpload", "check_content", "check_name", "check_upload",
           "read_upload"]


class InvalidUpload(InvalidInput):
    """An uploaded file refused: its message names the file and says what to do."""


def megabytes(n: int) -> str:
    """``n`` bytes in MB, as a person reads it."""
    return f"{n / 2**20:.1f} MB" if n >= 2**20 / 10 else f"{n:,} bytes"


def check_name(name: object) -> str:
    """``name`` when it is a plain file name of a type the documents folder takes.

    Raises:
        InvalidUpload: a path rather than a name, hidden, too long, with control characters, or of a
            type that is not indexed.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidUpload("The upload has no file name: upload a file such as notes.txt.")
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        plain = name.replace("\\", "/").rsplit("/", 1)[-1]
        raise InvalidUpload(f"{name!r} is a path, not a file name: it could land outside the documents folder. "
                            f"Upload the file itself{f' (named {plain!r})' if plain not in ('', '.', '..') else ''}.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidUpload(f"The file name {name!r} holds control characters: rename the file and upload it again.")
    if name.startswith("."):
        raise InvalidUpload(f"{name!r} is a hidden file name (it starts with a dot), which indexing skips: "
                            "rename it without the dot.")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidUpload(f"The file name is longer than {MAX_NAME_BYTES} bytes: shorten it and upload it again.")
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InvalidUpload(f"{name}: {suffix or 'a file without an extension'} is not a type the app indexes; "
                            f"upload {', '.join(UPLOAD_SUFFIXES)}.")
    return name


def check_content(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES,
                  archive: ArchiveLimits = ArchiveLimits()) -> None:
    """Refuse ``data`` unless it is 1 to ``max_bytes`` bytes of the type ``name``'s extension says (a
    .docx's zip directory within ``archive``); nothing is parsed or unpacked.

    Raises:
        InvalidUpload: empty, too large, not of its type, or a .docx that would unpack to too much.
    """
    if not data:
        raise InvalidUpload(f"{name} is empty (0 bytes): there is nothing to index.")
    if len(data) > max_bytes:
        raise InvalidUpload(f"{name} is {megabytes(len(data))}, over the {megabytes(max_bytes)} limit: "
                            "split it into smaller files.")
    suffix = Path(name).suffix.lower()
    if suffix in PDF_SUFFIXES:
        if b"%PDF-" not in data[:1024]:  # readers accept the header anywhere in the first 1,024 bytes
            raise InvalidUpload(f"{name} is not a PDF (it has no %PDF- header): upload the real PDF, or save "
                                "the file under its own type.")
    elif suffix in DOCX_SUFFIXES:
        try:
            is_word = "word/document.xml" in check_archive(data, archive)
        except NotAnArchive:
            is_word = False
        except ArchiveError as err:
            raise InvalidUpload(f"{name} is refused: {err}. Save it again from Word, or as PDF.") from None
        if not is_word:
            raise InvalidUpload(f"{name} is not a Word document (.docx): an old .doc or another file renamed? "
                                "Save it from Word as .docx or PDF.")
    else:
        try:
            decode_text(data)
        except DocumentError as err:
            raise InvalidUpload(f"{name} is not text ({err}): upload a text file, or the file under its own "
                                "type.") from None


def check_upload(name: object, data: bytes, limits: Limits = Limits(), chunking: ChunkConfig | None = None) -> Document:
    """The document an upload would add, when it passes every check (module docstring); nothing is
    written outside a temporary folder.

    Args:
        name: the file's name, as sent.
        data: its bytes.
        limits: the server's limits.
        chunking: the index's passage settings (for ``limits.document_passages``).

    Raises:
        InvalidUpload: the first check it fails.
    """
    name = check_name(name)
    check_content(name, data, limits.upload_bytes, limits.archive)
    from qa.app.reading import read_checked  # only for a file worth reading (it starts the reading processes)

    with tempfile.TemporaryDirectory(prefix="qa-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return read_checked(path, Path(tmp), limits, chunking)
        except DocumentError as err:
            raise InvalidUpload(f"{name} can't be indexed: {err}.") from None


def read_upload(path: str | Path, name: str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of an uploaded file the server saved at ``path``, its size checked before it is read.

    Raises:
        InvalidUpload: larger than ``max_bytes``, or gone or unreadable.
    """
    try:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise InvalidUpload(f"{name} is {megabytes(size)}, over the {megabytes(max_bytes)} limit: "
                                "split it into smaller files.")
        return Path(path).read_bytes()
    except OSError as err:
        logger.warning("cannot read the upload %s: %s", path, err)
        raise InvalidUpload(f"{name} could not be read on the server ({err.strerror or err}): upload it "
                            "again.") from None
