"""What a store's manifest says, whichever store holds it: its format, the encoder backend, and whether
the documents it records changed.

A manifest records the model, dimension, chunk settings, and per document file its hash, size and
mtime (the local store keeps it in ``manifest.json``: :func:`qa.stores.local.folder.read_manifest`;
Milvus in its documents collection). :func:`stale_reason` compares the recorded files with those on
disk, hashing only files whose size or mtime changed.

Example:
    >>> manifest = read_manifest("embeddings")
    >>> stale_reason(manifest, "embeddings")
    '1 changed (weather.txt)'
"""

from __future__ import annotations

import os
from pathlib import Path

from qa.ingest.documents import corpus_files, source_hash

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # format 1: the data files beside the manifest
# A file modified this soon before the build scanned it may change again within the same mtime
# tick unnoticed (git's "racily clean" entries): its mtime is not trusted, it is hashed on every check.
RACY_NS = 2_000_000_000


UNREADABLE = "unreadable"  # the hash recorded for a file that could not be read (loading skipped it)


def hash_file(path: str | Path) -> str:
    """:func:`~qa.ingest.documents.source_hash` of a file, read in 1 MiB blocks; ``UNREADABLE`` when the file
    can't be read (no permission, gone): loading skipped it with a warning, the build goes on."""
    try:
        with open(path, "rb") as f:
            return source_hash(iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return UNREADABLE


def file_hashes(docs_dir: str | Path) -> dict[str, str]:
    """:func:`hash_file` of every supported file under ``docs_dir``, keyed by relative path."""
    root = Path(docs_dir)
    return {p.relative_to(root).as_posix(): hash_file(p) for p in corpus_files(root)}


def backend_of(manifest_or_encoder) -> str:
    """The encoder backend of a manifest or an encoder; indexes and encoders that predate backends ran on torch."""
    if isinstance(manifest_or_encoder, dict):
        return manifest_or_encoder.get("backend", "torch")
    return getattr(manifest_or_encoder, "backend", "torch")


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
