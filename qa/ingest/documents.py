"""Load a folder of documents (.txt, .md, .html, .pdf, .docx) into :class:`~qa.types.Document` values.

Which files make the corpus (:func:`corpus_files`): every file under the folder, recursively, except
hidden ones (a name starting with ".", or inside such a folder). Symbolic links:

- a link to a file, inside the folder or outside it, is a document under the link's own name (its id,
  ``path`` and ``file`` are the link's; its text is the target's);
- a link to a folder is not followed, wherever it points (outside the corpus, or back into it), and
  is named in an info line: the corpus stays the folder the user named, nothing is read twice, and a
  cycle of links cannot loop;
- a broken link is skipped with a warning.

Example:
    >>> from qa.ingest.documents import load_documents
    >>> docs = load_documents("seeds")
    >>> docs[0].id
    '000_514f065cc880a116'
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from qa.errors import MissingPath, UserError
from qa.ingest.html_text import html_to_text
from qa.ingest.notices import gathered, summary
from qa.types import Document

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}  # Word 2007 and later, read by python-docx (not .doc, the older binary format)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES

# Lines that open many web pages but never name the document.
_BOILERPLATE = re.compile(
    r"^(this (site|website|page) is (intended|for)|share (this|on)|skip to|sign in|log ?in|subscribe|"
    r"cookies?\b|advertisement|menu$|home$|print$|back to|published:|updated:|posted:|volume \w+)",
    re.IGNORECASE,
)
_DATE_ONLY = re.compile(r"^[\d\s/.,:-]*(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)?[a-z]*[\d\s/.,:-]*$", re.I)
_MAX_TITLE = 120
# A run of hex digits with a digit in it (a hash, a UUID's part), or a number: not a word of a name.
_HASHLIKE = re.compile(r"\d+|(?=[0-9a-f]*\d)[0-9a-f]{6,}", re.IGNORECASE)
# Byte order marks and their encodings, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class DocumentError(UserError, ValueError):
    """A document folder cannot be loaded as a corpus."""


def load_documents(folder: str | Path) -> list[Document]:
    """Load every supported document under ``folder``, recursively, sorted by id.

    A file that can't be loaded (binary, undecodable, empty, an encrypted PDF, no permission to read
    it, any error of its reader) is skipped with a warning that names it and says why; the rest load.

    Raises:
        MissingPath: ``folder`` does not exist or is not a folder (a ``FileNotFoundError``).
        DocumentError: the folder holds no loadable document.
    """
    root = Path(folder)
    paths = document_files(root)
    ids = document_ids(root, paths)
    docs = []
    for path in paths:
        try:
            doc = load_document(path, ids[path], root)
        except (OSError, ValueError) as err:  # ValueError: DocumentError, UnicodeError
            logger.warning("skipping %s: %s", path, err)
            continue
        docs.append(doc)
    if not docs:
        raise no_documents(root)
    return sorted(docs, key=lambda d: d.id)


def document_files(root: Path) -> list[Path]:
    """The supported files under ``root``, sorted, with what is left out logged (links to folders,
    broken links, unreadable folders, files of other types).

    Raises:
        MissingPath: ``root`` does not exist or is not a folder.
    """
    if not root.exists():
        raise MissingPath(f"Document folder not found: {root} (pass --docs DIR with your documents)")
    if not root.is_dir():
        raise MissingPath(f"{root} is not a folder: pass --docs DIR, the folder that holds your documents")
    scan = _scan(root)
    for link in scan.folder_links:
        logger.info("link to a folder not followed: %s -> %s", link, os.readlink(link))
    for link in scan.broken_links:
        if link.suffix.lower() in SUPPORTED_SUFFIXES:
            logger.warning("skipping %s: a broken link (to %s)", link, os.readlink(link))
    for unreadable, err in scan.unreadable:
        logger.warning("skipping folder %s: %s", unreadable, err)
    unsupported = [p for p in scan.files if p.suffix.lower() not in SUPPORTED_SUFFIXES]
    if unsupported:
        logger.info("ignoring %d file(s) of unsupported type, e.g. %s", len(unsupported), unsupported[0])
    return [p for p in scan.files if p.suffix.lower() in SUPPORTED_SUFFIXES]


def no_documents(root: Path) -> DocumentError:
    """The error for a folder where no document could be loaded."""
    return DocumentError(
        f"No loadable documents in {root}: expected non-empty {', '.join(sorted(SUPPORTED_SUFFIXES))} files."
    )


def corpus_files(folder: str | Path, supported_only: bool = True) -> list[Path]:
    """The files of a corpus folder, recursively, sorted: hidden files and folders left out and, with
    ``supported_only``, only the types :func:`load_documents` reads. Loading and the index's change
    detection both list files here, so they always agree. Links are treated as described in the
    module docstring."""
    files = _scan(Path(folder)).files
    return [p for p in files if not supported_only or p.suffix.lower() in SUPPORTED_SUFFIXES]


class _Scan(NamedTuple):
    files: list[Path]  # sorted
    folder_links: list[Path]  # links to folders: not followed
    broken_links: list[Path]  # links to nothing
    unreadable: list[tuple[Path, OSError]]  # folders that could not be listed


def _scan(root: Path) -> _Scan:
    """Walk ``root`` without following links to folders (so a cycle of links can't loop) and without
    recursion (so any depth of folders is fine)."""
    files: list[Path] = []
    scan = _Scan(files, [], [], [])
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as err:
            scan.unreadable.append((folder, err))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                if path.is_dir():
                    scan.folder_links.append(path)
                elif path.is_file():
                    files.append(path)
                elif not path.exists():
                    scan.broken_links.append(path)
            elif entry.is_dir():
                pending.append(path)
            elif entry.is_file():
                files.append(path)
    files.sort()
    return scan


def document_ids(root: Path, paths: list[Path]) -> dict[Path, str]:
    """The id of each file: its relative path without the extension, unless another file has that
    id too; then its full relative path, repeated until no two ids are equal.

    Files that don't collide keep the same id from build to build (eval labels and feedback refer to
    them). Each round moves at least one file to its full relative path, and those are unique, so the
    loop ends.

    Raises:
        DocumentError: two files still share an id (the same file listed twice).
    """
    full = {p: p.relative_to(root).as_posix() for p in paths}
    ids = {p: p.relative_to(root).with_suffix("").as_posix() for p in paths}
    while True:
        holders: dict[str, list[Path]] = {}
        for p in paths:
            holders.setdefault(ids[p], []).append(p)
        moved = [p for group in holders.values() if len(group) > 1 for p in group if ids[p] != full[p]]
        if not moved:
            break
        for p in moved:
            ids[p] = full[p]
    clash = next((group for group in holders.values() if len(group) > 1), None)
    if clash:
        raise DocumentError(f"Two files would share the id {ids[clash[0]]!r}: {clash[0]} and {clash[1]}; "
                            "rename one of them.")
    return ids


def load_document(path: str | Path, doc_id: str | None = None, root: str | Path | None = None) -> Document:
    """Load one file, reading its bytes once.

    Args:
        path: the file (a link to a file is read through, but named as the link).
        doc_id: its id; the file's stem by default.
        root: the corpus folder, for :attr:`Document.file`; the file's own folder by default.

    Raises:
        DocumentError: a binary, undecodable, empty or unreadable document (it is a ``ValueError``).
        OSError: the file can't be read.
    """
    path = Path(path)
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    pages: tuple[tuple[int, int], ...] = ()
    declared = None  # the title the file states: PDF metadata, HTML <title>/<h1>
    if suffix in PDF_SUFFIXES:
        with _one_line_of_notes(path, "PDF"):
            text, pages = _read_pdf(raw)
            declared = _pdf_declared_title(raw)
    elif suffix in DOCX_SUFFIXES:
        text, declared = read_docx(raw)
    else:
        text = decode_text(raw)
        if suffix in HTML_SUFFIXES:
            text, declared = html_to_text(text)
    title = document_title(text, path.name, declared)
    if not text.strip():
        raise DocumentError("empty document (no text)")
    doc_id = doc_id or path.stem
    return Document(
        id=doc_id, title=title, path=str(path), text=text, pages=pages,
        file=path.relative_to(root).as_posix() if root is not None else path.name,
        source_hash=source_hash(raw),
    )


def source_hash(data: bytes | Iterable[bytes]) -> str:
    """The first 16 hex digits of the sha256 of a file's bytes (given whole, or as blocks in order): a document's
    :attr:`~qa.types.Document.source_hash`, and what the index manifest records to tell a changed file."""
    digest = hashlib.sha256()
    for block in (data,) if isinstance(data, (bytes, bytearray)) else data:
        digest.update(block)
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _one_line_of_notes(path: Path, kind: str) -> Iterator[None]:
    """Fold what the format library logs while ``path`` is read into one warning that names the file
    (:mod:`qa.ingest.notices`); when the file can't be read after all, the error that says so is the
    line to show, and the notes go to the info log."""
    with gathered() as notes:
        try:
            yield
        except BaseException:
            if notes:
                logger.info("%s: the %s reader reported: %s", path, kind, summary(notes, limit=5))
            raise
    if notes:
        logger.warning("%s: the %s reader worked around problems in the file (%s); some text may be missing",
                       path, kind, summary(notes))


def decode_text(raw: bytes) -> str:
    """The text of a file's bytes: by its byte order mark (UTF-8, UTF-16 or UTF-32, the mark dropped),
    else as UTF-8.

    Raises:
        DocumentError: no byte order mark and NUL bytes near the start (a binary file), or not UTF-8.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(encoding)
            except UnicodeDecodeError as err:
                raise DocumentError(f"not valid {encoding.upper()} text after its byte order mark ({err})") from err
    if b"\x00" in raw[:8192]:
        raise DocumentError("binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(f"not UTF-8 text ({err}); save it as UTF-8") from err


def _read_pdf(raw: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The text of each page joined by blank lines, and where each page starts.

    Raises:
        DocumentError: an encrypted PDF that needs a password or a missing package, or one pypdf can't read.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        page_texts = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError as err:
        raise DocumentError(f"encrypted PDF that needs a password ({err}); save a copy without one") from err
    except DependencyError as err:
        raise DocumentError(f"encrypted PDF: {err}") from err
    except PyPdfError as err:
        raise DocumentError(f"unreadable PDF: {err}") from err
    parts, pages, offset = [], [], 0
    for number, page_text in enumerate(page_texts, start=1):
        pages.append((offset, number))
        parts.append(page_text)
        offset += len(page_text) + 2
    return "\n\n".join(parts), tuple(pages)


def read_docx(raw: bytes) -> tuple[str, str]:
    """The text of a Word (.docx) file and its title, read with python-docx.

    Paragraphs and table rows come in reading order, one paragraph each (a row's cells joined by
    " | "), separated by blank lines; empty paragraphs are left out. The title is the file's Title
    property, else its first paragraph styled Title or Heading 1, else "".

    The archive's directory is checked first (:func:`qa.ingest.archive.check_archive`): one that
    would unpack to too much (a zip bomb) is refused before anything is unpacked.

    Raises:
        DocumentError: not a .docx (not a zip, or no Word document inside), a damaged one, or one
            that would unpack to too much.
    """
    import zipfile

    from qa.ingest.archive import ArchiveError, check_archive

    try:
        check_archive(raw)
    except ArchiveError as err:
        raise DocumentError(f"not a .docx that can be read safely: {err}") from None

    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from lxml.etree import XMLSyntaxError

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks, heading = [], ""
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks += [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
                continue
            text = item.text.strip()
            style = item.style.name if item.style is not None else ""
            if text and not heading and style in ("Title", "Heading 1"):
                heading = text
            blocks.append(text)
        try:  # without a core properties part, python-docx makes one up, titled "Word Document"
            document.part.package.part_related_by(RELATIONSHIP_TYPE.CORE_PROPERTIES)
            declared = document.core_properties.title or ""
        except KeyError:
            declared = ""
        title = declared.strip() or heading
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, XMLSyntaxError) as err:
        raise DocumentError(f"not a readable .docx file ({err or type(err).__name__}); save it again from "
                            "Word, or as PDF") from err
    return "\n\n".join(b for b in blocks if b.strip()), " ".join(title.split())


def document_title(text: str, file_name: str, declared: str | None = None) -> str:
    """A document's title: the one the file declares (PDF metadata, HTML ``<title>``/``<h1>``), else a
    Markdown heading near the top, else a whole line near the top that reads as a title (see
    :func:`_reads_as_title`), else the file name made readable; but when the file's name is only
    numbers and hashes (``003_209851d2c1bf9842.txt``), which tell a reader nothing and would show as
    an id, the text's first sentence (see :func:`_first_sentence`).

    Example:
        >>> document_title("FEEDBACK\n\nSince their creation, doubts have lingered.", "gm_report-2005.txt")
        'Gm report 2005'
        >>> document_title("FEEDBACK\n\nSince their creation, doubts have lingered.", "004_474e51ade5268c1c.txt")
        'Since their creation, doubts have lingered'
    """
    declared = " ".join((declared or "").split())
    declared = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", declared)
    if declared and len(declared) <= 2 * _MAX_TITLE and not re.search(r"\.(docx?|pdf|pptx?|txt)$|^untitled$", declared, re.I):
        return declared
    lines = [line.strip() for line in text.splitlines() if line.strip()][:40]
    for line in lines[:20]:
        heading = re.match(r"^#{1,2}\s+(.*\S)", line)
        if heading:
            return heading.group(1).strip("# ").strip()  # a heading is the author's title: kept whole
    for line in lines[:12]:
        plain = line.strip("*_# ").strip()
        if len(plain) > 2 * _MAX_TITLE:
            break  # the body has begun
        if _reads_as_title(plain):
            return _capitalised(plain)
    if opaque_name(file_name):
        sentence = _first_sentence(lines[:12])
        if sentence:
            return _capitalised(sentence)
    return readable_file_name(file_name)


def _capitalised(line: str) -> str:
    return line[0].upper() + line[1:] if line[0].islower() else line


def opaque_name(file_name: str) -> bool:
    """Whether a file's name holds no word, only numbers and hex hashes (``003_209851d2c1bf9842.txt``,
    a UUID): such a name says nothing of the document, and a title made of it reads as an id."""
    tokens = re.split(r"[\W_]+", Path(file_name).stem if Path(file_name).suffix.lower() in SUPPORTED_SUFFIXES
                      else Path(file_name).name)
    return not any(re.search(r"[^\W\d_]{2}", t) and not _HASHLIKE.fullmatch(t) for t in tokens)


def _first_sentence(lines: list[str]) -> str:
    """The first sentence of the first line (of ``lines``) that is neither boilerplate nor a date and
    has three words or more, without its full stop; "" when there is none. A sentence longer than
    ``2 * _MAX_TITLE`` characters is cut at a word before ``_MAX_TITLE`` and ends in "…", which
    says that it goes on."""
    for line in lines:
        plain = line.strip("*_# ").strip()
        if len(re.findall(r"[^\W\d_]{2,}", plain)) < 3 or _BOILERPLATE.match(plain) or _DATE_ONLY.match(plain):
            continue
        sentence = re.split(r"(?<=[.!?])\s+(?=\W*[A-Z0-9])", plain, maxsplit=1)[0].rstrip(".").strip()
        if len(sentence) > 2 * _MAX_TITLE:
            sentence = sentence[:_MAX_TITLE].rsplit(" ", 1)[0].rstrip(",;:") + "…"
        return sentence
    return ""


def _reads_as_title(line: str) -> bool:
    """A line that names a document: two words or more, at most ``_MAX_TITLE`` characters, one phrase
    (no sentence ends in it or at its end), and not a web page's boilerplate or a date."""
    words = re.findall(r"[A-Za-z]{2,}", line)
    return (2 <= len(words) and len(line) <= _MAX_TITLE and not re.search(r"[.!?,;:]\s", line)
            and not line.endswith((".", ",", ";", ":")) and not _BOILERPLATE.match(line)
            and not _DATE_ONLY.match(line))


def readable_file_name(file_name: str) -> str:
    """A file name as a title: no folder or extension, ``_``, ``-`` and ``.`` as spaces, the first letter
    capitalised (``annual_report-2024.pdf`` -> ``Annual report 2024``)."""
    stem = Path(file_name).stem if Path(file_name).suffix.lower() in SUPPORTED_SUFFIXES | {".docx"} else Path(file_name).name
    name = " ".join(re.sub(r"[_\-.]+", " ", stem).split()) or file_name.strip() or "Untitled"
    return name[0].upper() + name[1:]


def _pdf_declared_title(raw: bytes) -> str | None:
    """The title in a PDF's document information (``/Title``), or ``None``."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        metadata = PdfReader(io.BytesIO(raw)).metadata
    except (PyPdfError, ValueError, KeyError) as err:  # the text was read already; only the title is lost
        logger.info("no PDF title metadata: %s", err)
        return None
    title = metadata.title if metadata is not None else None
    return title if isinstance(title, str) else None


