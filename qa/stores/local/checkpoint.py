"""Vectors of a build in progress, saved batch by batch, so a killed build resumes where it stopped.

``INDEX/.partial/`` holds ``meta.json`` (model and backend) and, per batch, ``batch-N.npy`` (the
vectors) and ``batch-N.keys.json`` (a hash of each passage's text), the keys written last. Vectors
depend only on the model, the backend and the text, so a re-run reuses every vector whose text it
still has to embed, whatever the chunking or the order. A batch embedded on a cluster's workers also
has ``batch-N.docs.json``: the keys of every passage of each document the batch completed, so a
re-run tells the workers which passages need no embedding before they read the documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

# What a build writes in the folder: meta.json, batch-N.npy, batch-N.keys.json, and their drafts (.tmp).
_OURS = re.compile(r"^(meta\.json|batch-\d{6,}\.(npy|keys\.json|docs\.json))(\.tmp)?$")


def text_key(text: str) -> str:
    """The key a passage's vector is saved under: sha256 of its text (32 hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Checkpoint:
    """The saved vectors of one index folder's build in progress.

    Args:
        folder: where they are kept (``INDEX/.partial``).
        model: the encoder's model name; vectors of another model are discarded.
        backend: the encoder backend; likewise.
    """

    def __init__(self, folder: Path, model: str, backend: str):
        self.folder = folder
        self.meta = {"model": model, "backend": backend}

    def load(self) -> dict[str, np.ndarray]:
        """The saved vectors by :func:`text_key`; empty (and the folder cleared) for another model."""
        if not self.folder.is_dir():
            return {}
        try:
            meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if meta != self.meta:
            logger.info("discarding the vectors of an interrupted build of another model in %s", self.folder)
            self.clear()
            return {}
        vectors: dict[str, np.ndarray] = {}
        for keys_file in sorted(self.folder.glob("batch-*.keys.json")):
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
                block = np.load(keys_file.with_name(keys_file.name.replace(".keys.json", ".npy")))
            except (OSError, ValueError) as err:
                logger.warning("ignoring %s of an interrupted build: %s", keys_file.name, err)
                continue
            if block.ndim == 2 and len(block) == len(keys):
                vectors.update(zip(keys, block))
        if vectors:
            logger.info("resuming: %d passages were embedded by an interrupted build", len(vectors))
        return vectors

    def load_documents(self) -> dict[str, list[str]]:
        """The passage keys of each document a saved batch completed (see the module docstring), by id."""
        documents: dict[str, list[str]] = {}
        for docs_file in sorted(self.folder.glob("batch-*.docs.json")):
            if not docs_file.with_name(docs_file.name.replace(".docs.json", ".keys.json")).is_file():
                continue  # the batch was not saved whole
            try:
                documents.update(json.loads(docs_file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:
                logger.warning("ignoring %s of an interrupted build: %s", docs_file.name, err)
        return documents

    def save(self, keys: Sequence[str], block: np.ndarray, documents: dict[str, list[str]] | None = None) -> None:
        """Add one batch of vectors (``block[i]`` is the vector of ``keys[i]``); ``documents``: the
        passage keys of each document whose vectors this batch completes."""
        self.folder.mkdir(exist_ok=True)
        meta_file = self.folder / "meta.json"
        if not meta_file.is_file():
            _replace_with(meta_file, json.dumps(self.meta).encode())
        number = len(list(self.folder.glob("batch-*.keys.json"))) + 1
        stem = self.folder / f"batch-{number:06d}"
        tmp = stem.with_name(stem.name + ".npy.tmp")
        with tmp.open("wb") as f:
            np.save(f, np.ascontiguousarray(block, dtype=np.float32))
        os.replace(tmp, stem.with_name(stem.name + ".npy"))
        if documents:
            _replace_with(stem.with_name(stem.name + ".docs.json"), json.dumps(documents).encode())
        _replace_with(stem.with_name(stem.name + ".keys.json"), json.dumps(list(keys)).encode())

    def clear(self) -> None:
        """Remove the saved vectors: the files a build writes here, then the folder. Anything else found in
        it is left where it is (with the folder), with a warning: only what the product made is deleted."""
        if self.folder.is_symlink() or not self.folder.is_dir():
            if self.folder.is_symlink():
                logger.warning("left %s in place: a link, not the folder a build makes", self.folder)
            return
        foreign = []
        for entry in self.folder.iterdir():
            if _OURS.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
            else:
                foreign.append(entry.name)
        if foreign:
            logger.warning("left %s in place: it holds files a build did not make (%s)", self.folder,
                           ", ".join(sorted(foreign)[:3]))
            return
        try:
            self.folder.rmdir()
        except OSError as err:
            logger.warning("could not remove %s: %s", self.folder, err)


def _replace_with(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
