"""The bundled corpus served as a working copy, so that trying the Documents tab leaves the project as it was.

Uploads, deletes and re-scans change the served folder (an upload is saved there, a deleted file goes to
its ``.qa-trash/``, ``.qa-uploads.json`` records what the app did) and rewrite its index. On the bundled
corpus those are tracked files (``seeds/`` and ``embeddings/``): changing them would leave the git tree
dirty, and the tests, which read the bundled corpus, would see what a visitor uploaded. So when the
folder served is the bundled one, the app serves a copy instead: ``.qa-demo/seeds/`` and
``.qa-demo/embeddings/`` under the current directory (git-ignored, like ``.qa-index/``), made on the
first start from the bundled documents and their shipped index, so nothing is embedded. The copy is
kept across restarts (what was uploaded stays); deleting ``.qa-demo/`` starts again from the bundled
corpus.

Example:
    >>> docs, index = demo_copy("seeds", "embeddings")
    >>> docs, index
    (PosixPath('.qa-demo/seeds'), PosixPath('.qa-demo/embeddings'))
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from qa.errors import UserError
from qa.ingest.documents import corpus_files
from qa.stores.local.folder import LOCK, MANIFEST, PARTIAL
from qa.stores.manifest import file_hashes

logger = logging.getLogger(__name__)

DEMO_DIR = Path(".qa-demo")  # under the current directory, beside .qa-index/
MADE_FROM = "made-from.json"  # the bundled files' hashes when the copy was made


class DemoCopyError(UserError):
    """The folder where the demo copy goes holds something else."""


def demo_copy(docs: str | Path, index: str | Path | None, root: str | Path = DEMO_DIR) -> tuple[Path, Path]:
    """The documents folder and index to serve for the bundled corpus ``docs`` (its index ``index``, which
    may be missing): those of the working copy in ``root``, made now when it is not there yet.

    The bundled documents are copied (hidden files, such as what an earlier app left there, are not),
    and so is the index, which keeps recording its documents as ``../seeds`` beside it.

    Raises:
        DemoCopyError: ``root`` exists but is not a demo copy (it is left as it is).
    """
    docs, root = Path(docs), Path(root)
    copy_docs, copy_index = root / docs.resolve().name, root / (Path(index).name if index else "embeddings")
    if not root.exists():
        _make(docs, Path(index) if index else None, root, copy_docs.name, copy_index.name)
    if not (root / MADE_FROM).is_file() or not copy_docs.is_dir():
        raise DemoCopyError(f"{root} is not a copy of the bundled corpus made by the app: move it away (or delete "
                            f"it if it is yours to delete) and start again, or pass --docs with another folder.")
    if _made_from(root) != file_hashes(docs):
        logger.warning("%s was copied from an earlier version of %s: delete %s to serve the bundled corpus as it is "
                       "now.", root, docs, root)
    return copy_docs, copy_index


def is_demo_copy(docs: str | Path) -> bool:
    """Whether ``docs`` is the documents folder of a demo copy (:func:`demo_copy`)."""
    return (Path(docs).resolve().parent / MADE_FROM).is_file()


def _made_from(root: Path) -> dict:
    try:
        return json.loads((root / MADE_FROM).read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}


def _make(docs: Path, index: Path | None, root: Path, docs_name: str, index_name: str) -> None:
    """Fill a fresh folder beside ``root`` and rename it to ``root`` in one step, so a copy is never
    found half made; when another server made one meanwhile, theirs is kept and ours removed."""
    tmp = root.with_name(f"{root.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        for path in corpus_files(docs, supported_only=False):
            target = tmp / docs_name / path.relative_to(docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)  # the mtimes too, so the index's records of them still hold
        if index is not None and (index / MANIFEST).is_file():
            # Not the lock, nor what an interrupted build left (its checkpoint, a manifest half written).
            shutil.copytree(index, tmp / index_name, ignore=shutil.ignore_patterns(LOCK, PARTIAL, f"{MANIFEST}.tmp-*"))
        (tmp / MADE_FROM).write_text(json.dumps({"from": str(docs.resolve()), "files": file_hashes(docs)}, indent=1),
                                     encoding="utf-8")
        os.rename(tmp, root)
    except OSError:
        if not root.exists():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("copied the bundled corpus %s and its index to %s", docs, root)
