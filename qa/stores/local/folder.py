"""The index folder on disk: what ``--out`` may replace, one writer at a time, an atomic publish, and
reading its manifest.

Layout (format 2)::

    INDEX/manifest.json   describes the index and names its data folder ("data": "v-000003")
    INDEX/v-000003/       passages.jsonl, documents.jsonl, dense.faiss, bm25/
    INDEX/.lock           held (flock) by the one writer; holds its pid and start time
    INDEX/.partial/       vectors of a build in progress (:mod:`qa.stores.local.checkpoint`)

A build writes a new version folder, then replaces ``manifest.json`` with one ``os.replace``: that
rename is the publish, as Lucene's ``segments_N`` is. Readers read the manifest first, so they see
the old index or the new one, whole. Older versions are removed after the publish. Format 1 kept the
data files beside the manifest; they still load, and are removed by the next build.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

from qa.errors import MissingPath, UnsafeDestination
from qa.ingest.documents import SUPPORTED_SUFFIXES
from qa.stores.base import CorruptIndexError, IndexLockedError, IndexNotFoundError, IndexWriteError, StaleIndexError
from qa.stores.manifest import READABLE_FORMATS, docs_dir_of

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
DOCUMENTS = "documents.jsonl"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
LOCK = ".lock"
PARTIAL = ".partial"
DATA_FILES = (PASSAGES, DOCUMENTS, DENSE, BM25_DIR)
_MANIFEST_TMP = MANIFEST + ".tmp-"
_VERSION = re.compile(r"^v-(\d{6,})$")
# Each step of a write, in order. ``after_step`` is called after each; a kill may land after any.
STEPS = ("version_folder", "passages", "documents", "dense", "bm25", "synced", "manifest_tmp", "pointer", "cleanup")


def after_step(name: str) -> None:
    """Called after each step of :data:`STEPS`; tests replace it to simulate a crash there."""


def is_our_name(name: str) -> bool:
    """Whether a build of ours creates files or folders of this name inside an index folder."""
    return name in (MANIFEST, LOCK, PARTIAL, *DATA_FILES) or bool(_VERSION.match(name)) or name.startswith(_MANIFEST_TMP)


def manifest_is_ours(folder: Path) -> bool:
    """Whether ``folder/manifest.json`` is the manifest of an index of ours."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"format_version", "model", "chunking"} <= manifest.keys()


def check_destination(docs_dir: Path, out_dir: Path) -> None:
    """Refuse an ``out_dir`` that a build would harm, before any work is done.

    Allowed: a missing or empty folder, or an index of ours. Refused: a file, a folder of other
    files, the documents folder itself, a folder inside it, and a folder that holds it.

    Raises:
        MissingPath: ``docs_dir`` is not a folder.
        UnsafeDestination: writing the index at ``out_dir`` could overwrite or delete something.
    """
    if not docs_dir.is_dir():
        raise MissingPath(f"Document folder not found: {docs_dir} (pass --docs DIR with your documents).")
    docs, out = docs_dir.resolve(), out_dir.resolve()
    elsewhere = f"write it to a folder outside {docs_dir}, e.g. --out {docs.parent / (docs.name + '-index')}"
    if out == docs:
        raise UnsafeDestination(f"--out {out_dir} is the documents folder itself: the index would replace your "
                                f"documents; {elsewhere}.")
    if docs in out.parents:
        raise UnsafeDestination(f"--out {out_dir} is inside the documents folder {docs_dir}: the index would be "
                                f"read as documents; {elsewhere}.")
    if out in docs.parents:
        raise UnsafeDestination(f"The documents folder {docs_dir} is inside --out {out_dir}: replacing the index "
                                "there could delete them; choose another --out.")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise UnsafeDestination(f"--out {out_dir} is a file, not a folder: choose a new or empty folder for the index.")
        try:
            names = [p.name for p in out_dir.iterdir()]
        except OSError as err:
            raise IndexWriteError(f"Cannot read --out {out_dir} ({err.strerror or err}): give this user access to "
                                  "it, or choose another --out.") from None
        foreign = sorted(name for name in names if not is_our_name(name))
        if foreign and not manifest_is_ours(out_dir):
            shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
            raise UnsafeDestination(f"--out {out_dir} holds files that are not an index ({shown}): refusing to "
                                    "replace them; choose a new or empty folder for the index.")
        return
    ancestor = out_dir.parent
    while not (ancestor.exists() or ancestor.is_symlink()) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UnsafeDestination(f"Cannot create --out {out_dir}: {ancestor} is a file, not a folder.")


def data_name(manifest: dict) -> str:
    """The data folder a manifest names (``"."`` for format 1, whose files sit beside it)."""
    name = manifest.get("data", ".")
    return name if isinstance(name, str) and (name == "." or _VERSION.match(name)) else ""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """Holds the index folder's lock while a build runs, and publishes its result atomically.

    Entering creates the folder, takes the lock (a second writer fails at once, naming the first)
    and removes what a killed writer left. Use :meth:`new_version`, write the data files into it,
    then :meth:`publish`.

    Args:
        out_dir: the index folder (already checked by :func:`check_destination`).
    """

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> "Writer":
        self._created = not self.out_dir.exists()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise IndexWriteError(f"Cannot write the index at {self.out_dir}: {err.strerror or err} "
                                  f"({err.filename or self.out_dir}); choose another --out.") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "holder unknown"
            os.close(fd)
            raise IndexLockedError(f"Another build is writing the index at {self.out_dir} ({holder}): wait for it "
                                   "to finish (or stop it), then run again.") from None
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        self._fd = fd
        self._clean_debris()
        return self

    def __exit__(self, *exc) -> None:
        if self._created and {p.name for p in self.out_dir.iterdir()} <= {LOCK}:
            (self.out_dir / LOCK).unlink(missing_ok=True)  # while still locked: no one can take a stale lock
            try:
                self.out_dir.rmdir()
            except OSError:
                pass
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def current(self) -> str | None:
        """The data folder the published manifest names, or ``None`` when none can be read."""
        try:
            manifest = json.loads((self.out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data_name(manifest) or None if isinstance(manifest, dict) else None

    def _clean_debris(self) -> None:
        """Remove what a killed writer left: unpublished versions, manifest drafts, and the
        temporary and backup folders older builds made beside the index."""
        current = self.current()
        for entry in self.out_dir.iterdir():
            if _VERSION.match(entry.name) and current is not None and entry.name != current:
                logger.info("removing %s, left by an interrupted build", entry)
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(_MANIFEST_TMP):
                entry.unlink(missing_ok=True)
        name, parent = self.out_dir.name, self.out_dir.parent
        for entry in [*parent.glob(f".{name}.building-*"), *parent.glob(f".{name}.old-*")]:
            if entry.is_dir() and not entry.is_symlink() and all(is_our_name(p.name) for p in entry.iterdir()):
                logger.info("removing %s, left by an interrupted build", entry)
                shutil.rmtree(entry, ignore_errors=True)
            else:
                logger.warning("left %s in place: it is not an index folder (an older version of qa may have "
                               "moved it there when it replaced %s)", entry, self.out_dir)

    def new_version(self) -> Path:
        """A new, empty version folder to write the data files into."""
        numbers = [int(m.group(1)) for p in self.out_dir.iterdir() if (m := _VERSION.match(p.name))]
        version = self.out_dir / f"v-{max(numbers, default=0) + 1:06d}"
        version.mkdir()
        after_step("version_folder")
        return version

    def publish(self, version: Path, manifest: dict) -> None:
        """Make ``version`` the index: sync its files, then replace the manifest in one rename,
        then remove older versions and format-1 data files."""
        for path in sorted(version.rglob("*"), reverse=True):
            _fsync(path)
        _fsync(version)
        after_step("synced")
        draft = self.out_dir / f"{_MANIFEST_TMP}{os.getpid()}"
        with draft.open("w", encoding="utf-8") as f:
            json.dump({**manifest, "data": version.name}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        after_step("manifest_tmp")
        os.replace(draft, self.out_dir / MANIFEST)
        _fsync(self.out_dir)
        after_step("pointer")
        for entry in self.out_dir.iterdir():
            if (_VERSION.match(entry.name) and entry.name != version.name) or entry.name in DATA_FILES:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        after_step("cleanup")

    def restamp(self, manifest: dict) -> None:
        """Replace the manifest (one atomic rename), keeping the data folder it names now."""
        current = self.current()
        if current is None:
            raise ValueError(f"no published index at {self.out_dir} to restamp")
        draft = self.out_dir / f"{_MANIFEST_TMP}{os.getpid()}"
        with draft.open("w", encoding="utf-8") as f:
            json.dump({**manifest, "data": current}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(draft, self.out_dir / MANIFEST)
        _fsync(self.out_dir)

    def discard(self, version: Path) -> None:
        """Remove an unpublished version folder (after a failed write)."""
        if version.is_dir() and self.current() != version.name:
            shutil.rmtree(version, ignore_errors=True)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _current_data(path: Path) -> object:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return None


def _rebuild_command(path: Path, manifest: dict | None) -> str:
    docs = "DOCS"
    if manifest and isinstance(manifest.get("docs_dir"), str) and manifest["docs_dir"]:
        docs = _display(docs_dir_of(path, manifest))
    return f"qa index --docs {docs} --out {path}"


def _holds_documents(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file() for p in path.rglob("*"))


def read_manifest(path: str | Path) -> dict:
    """The manifest of the index at ``path`` (model, backend, chunking, documents, ...), checked.

    Raises:
        IndexNotFoundError: no index there.
        StaleIndexError: an index of a format this version does not read.
        CorruptIndexError: the manifest is not one of ours (not JSON, not an object, fields missing).
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        if _holds_documents(path) and not (path / LOCK).exists():
            raise IndexNotFoundError(f"{path} holds documents, not an index: build an index of them in another "
                                     f"folder with: qa index --docs {path} --out INDEX_DIR (outside {path}).")
        raise IndexNotFoundError(f"No index at {path} (no {MANIFEST}). Build one with: qa index --docs DOCS --out {path}")
    rebuild = _rebuild_command(path, None)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} is not readable JSON "
                                f"({_first_line(err)}). Rebuild it with: {rebuild}") from None
    if not isinstance(manifest, dict):
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} holds a {type(manifest).__name__}, "
                                f"not an object. Rebuild it with: {rebuild}")
    rebuild = _rebuild_command(path, manifest)
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise StaleIndexError(f"The index at {path} has format {manifest.get('format_version')}, this version reads "
                              f"{', '.join(map(str, READABLE_FORMATS))}. Rebuild it with: {rebuild}")
    missing = [k for k in ("model", "chunking", "documents", "passages") if k not in manifest]
    rows = manifest.get("documents", []) + manifest.get("skipped", [])
    if missing or not isinstance(rows, list) or not all(isinstance(r, dict) and {"file", "hash"} <= r.keys()
                                                        for r in rows):
        why = f"lacks {', '.join(missing)}" if missing else "has malformed document entries"
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} {why}. Rebuild it with: {rebuild}")
    if not data_name(manifest):
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} names no valid data folder "
                                f"({manifest.get('data')!r}). Rebuild it with: {rebuild}")
    return manifest


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
