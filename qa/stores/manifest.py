"""The local store's manifest: reading and checking it, and whether the documents it records changed.

``manifest.json`` records the model, dimension, chunk settings, and per document file its hash, size
and mtime (see :mod:`qa.stores.folder` for the folder layout). :func:`read_manifest` checks it is one of
ours; :func:`stale_reason` compares the recorded files with those on disk, hashing only files whose
size or mtime changed.

Example:
    >>> manifest = read_manifest("embeddings")
    >>> stale_reason(manifest, "embeddings")
    '1 changed (weather.txt)'
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from qa.ingest.documents import SUPPORTED_SUFFIXES, corpus_files
from qa.stores import folder
from qa.stores.base import CorruptIndexError, IndexNotFoundError, StaleIndexError
from qa.stores.folder import MANIFEST

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: the data files beside the manifest
# A file modified this soon before the build scanned it may change again within the same mtime
# tick unnoticed (git's "racily clean" entries): its mtime is not trusted, it is hashed on every check.
RACY_NS = 2_000_000_000


UNREADABLE = "unreadable"  # the hash recorded for a file that could not be read (loading skipped it)


def hash_file(path: str | Path) -> str:
    """sha256 (16 hex digits) of a file's bytes, read in 1 MiB blocks; ``UNREADABLE`` when the file
    can't be read (no permission, gone): loading skipped it with a warning, the build goes on."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return UNREADABLE
    return digest.hexdigest()[:16]


def file_hashes(docs_dir: str | Path) -> dict[str, str]:
    """sha256 (16 hex digits) of every supported file under ``docs_dir``, keyed by relative path."""
    root = Path(docs_dir)
    return {p.relative_to(root).as_posix(): hash_file(p) for p in corpus_files(root)}


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
        if _holds_documents(path) and not (path / folder.LOCK).exists():
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
    if not folder.data_name(manifest):
        raise CorruptIndexError(f"The index at {path} is damaged: {MANIFEST} names no valid data folder "
                                f"({manifest.get('data')!r}). Rebuild it with: {rebuild}")
    return manifest


def backend_of(manifest_or_encoder) -> str:
    """The encoder backend of a manifest or an encoder; indexes and encoders that predate backends ran on torch."""
    if isinstance(manifest_or_encoder, dict):
        return manifest_or_encoder.get("backend", "torch")
    return getattr(manifest_or_encoder, "backend", "torch")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def docs_dir_of(index_dir: str | Path, manifest: dict) -> Path:
    """The documents' folder an index was built from, resolved against the index folder."""
    return (Path(index_dir) / manifest.get("docs_dir", "")).resolve()


def stale_reason(manifest: dict, index_dir: str | Path) -> str | None:
    """Why the recorded documents no longer match those on disk, or ``None`` when they do.

    A file whose size and mtime are those recorded (and were not racy) is taken as unchanged
    without reading it; any other is hashed, as git's index does.
    """
    docs_dir = docs_dir_of(index_dir, manifest)
    if not manifest.get("docs_dir") or not docs_dir.is_dir():
        return None  # the index travels without its documents: nothing to compare against
    recorded = {row["file"]: row for row in manifest["documents"] + manifest.get("skipped", [])}
    current = {p.relative_to(docs_dir).as_posix(): p for p in corpus_files(docs_dir)}
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    scanned = manifest.get("scanned_ns")
    changed = sorted(f for f in set(current) & set(recorded) if _differs(current[f], recorded[f], scanned))
    parts = [f"{len(x)} {what} ({', '.join(x[:3])}{', …' if len(x) > 3 else ''})"
             for x, what in ((added, "new"), (changed, "changed"), (removed, "removed")) if x]
    return "; ".join(parts) or None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _differs(path: Path, row: dict, scanned_ns: int | None) -> bool:
    st = _stat(path)
    if st is None:
        return row["hash"] != UNREADABLE
    size, mtime = row.get("size"), row.get("mtime_ns")
    if size is not None and st.st_size != size:
        return True
    trusted = mtime is not None and scanned_ns is not None and mtime < scanned_ns - RACY_NS
    if trusted and st.st_mtime_ns == mtime:
        return False
    return hash_file(path) != row["hash"]
