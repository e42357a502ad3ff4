"""The documents the app serves, managed from the browser: upload, delete, re-index, list.

Uploads land in the served folder itself, so ``qa index``/``qa ask`` and the app see one corpus.
Every change re-runs :func:`qa.stores.local.build.build_index` on the folder, which embeds only new and
changed files and publishes the new index atomically; the chat answers from the previous index (a
:class:`LiveQA` holds it) until the new one is loaded, then switches in one step.

What the app did to the folder is recorded in ``.qa-uploads.json`` there (hidden, so never indexed):
which files it uploaded (by name and hash) and when each document was indexed. Deleting an uploaded
file removes it; a file the user put there is moved to ``.qa-trash/`` in the folder, and only after
the user confirms (:class:`NeedsConfirmation` says what will happen). No file is ever overwritten:
an upload whose name is taken is saved under a free name ("notes (2).txt") and the reply says so.

One change is indexed at a time; ``limits.waiting_changes`` more may wait behind it (each told so on
its progress bar), and any beyond are refused at once (:class:`Busy`), so visitors cannot pile up
work. What a visitor is told never names the server's folders or processes.

Example:
    >>> library = DocumentLibrary(QA.load(".qa-index/docs"), "docs", ".qa-index/docs")
    >>> library.upload("minutes.docx", Path("minutes.docx").read_bytes()).message
    'Indexed "Board minutes" (minutes.docx): 4 paragraphs, 3 passages.'
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from qa.app.limits import Limits, shown
from qa.app.uploads import InvalidUpload, check_upload
from qa.errors import InvalidInput, UserError
from qa.ingest.documents import corpus_files, document_ids
from qa.retrieval import DEFAULT_MODE
from qa.text import plural

if TYPE_CHECKING:
    from qa.answering.pipeline import QA
    from qa.ingest.chunking import ChunkConfig
    from qa.stores.jobs import BuildStats
    from qa.types import Answer, Document

logger = logging.getLogger(__name__)

REGISTRY = ".qa-uploads.json"  # in the documents folder
TRASH = ".qa-trash"  # where a user's deleted file goes, in the documents folder
Progress = Callable[[float, str], None]  # (fraction done, what is happening), like gr.Progress


class NeedsConfirmation(UserError):
    """Deleting this document would move a file the user put in the folder: ask first."""


class Busy(UserError):
    """As many changes as may wait are waiting already: try again later."""


class IndexUnavailable(UserError):
    """The index could not be updated; the visitor is told so without the server's paths."""


def _no_progress(fraction: float, desc: str) -> None:
    logger.info("%s (%.0f%%)", desc, 100 * fraction)


class LiveDocuments(Mapping):
    """The documents of the current index; a document the last change removed is still found (so an
    answer given just before a delete can still be shown), but no longer listed."""

    def __init__(self, live: "LiveQA"):
        self._live = live

    def __getitem__(self, doc_id: str) -> "Document":
        current, previous = self._live.current, self._live.previous
        if doc_id in current.documents or previous is None:
            return current.documents[doc_id]
        return previous.documents[doc_id]

    def __contains__(self, doc_id: object) -> bool:  # indexed now (``[]`` and ``get`` also find the one just removed)
        return doc_id in self._live.current.documents

    def __iter__(self) -> Iterator[str]:
        return iter(self._live.current.documents)

    def __len__(self) -> int:
        return len(self._live.current.documents)


class LiveQA:
    """A :class:`~qa.answering.pipeline.QA` that can be replaced while it serves: each question is
    answered whole by the pipeline that was current when it arrived (an
    :class:`~qa.answering.question.Answerer`).

    ``generation`` counts the replacements (the answer cache keys on it). Any other attribute is the
    current pipeline's (``threshold``, ``bands``, ``retriever``, ...).
    """

    def __init__(self, qa: "QA"):
        self._current = qa
        self._previous: "QA | None" = None
        self.generation = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> "QA":
        return self._current

    @property
    def previous(self) -> "QA | None":
        return self._previous

    def swap(self, qa: "QA") -> None:
        """Serve ``qa`` from now on."""
        with self._lock:
            self._previous, self._current = self._current, qa
            self.generation += 1

    @property
    def documents(self) -> LiveDocuments:
        return LiveDocuments(self)

    @property
    def threshold(self) -> float:
        return self._current.threshold

    def ask(self, question: str, top_k: int | None = None, mode: str = DEFAULT_MODE, threshold: float | None = None,
            history: Sequence[Any] | None = None, doc_ids: Sequence[str] | None = None,
            reader: str | None = None) -> "Answer":
        """:meth:`QA.ask <qa.answering.pipeline.QA.ask>` of the pipeline current when the question arrived."""
        return self._current.ask(question, top_k=top_k, mode=mode, threshold=threshold, history=history,
                                 doc_ids=doc_ids, reader=reader)

    def to_json(self, answer: "Answer") -> dict:
        """The pipeline's JSON for ``answer``, from the pipeline whose documents it cites."""
        qa = self._current
        if self._previous is not None and any(h.passage.doc_id not in qa.documents for h in answer.hits):
            qa = self._previous
        return qa.to_json(answer)

    def __getattr__(self, name: str):
        return getattr(self._current, name)


@dataclass(frozen=True)
class Change:
    """What an upload, delete or re-scan did, in words for the person and in figures for a script."""

    message: str
    doc_id: str | None = None
    file: str | None = None
    embedded: int = 0  # passages that went through the encoder
    seconds: float = 0.0


class DocumentLibrary:
    """The served folder and its index, changed one build at a time while the chat goes on.

    Args:
        qa: the pipeline loaded from ``index_dir`` (its encoder and reader are reused by every rebuild).
        docs_dir: the served documents folder.
        index_dir: its index.
        max_upload_bytes: the largest file accepted (default: ``limits.upload_bytes``).
        limits: what an upload may be, and how many changes may wait (:class:`qa.app.limits.Limits`).
    """

    def __init__(self, qa: "QA", docs_dir: str | Path, index_dir: str | Path,
                 max_upload_bytes: int | None = None, limits: Limits | None = None):
        self.live = qa if isinstance(qa, LiveQA) else LiveQA(qa)
        self.docs_dir = Path(docs_dir)
        self.index_dir = Path(index_dir)
        limits = limits or Limits()
        if max_upload_bytes is not None:
            limits = dataclasses.replace(limits, upload_bytes=max_upload_bytes)
        self.limits = limits
        self._build_lock = threading.Lock()  # one change (save, build, swap) at a time
        self._tickets = threading.BoundedSemaphore(1 + limits.waiting_changes)  # the change indexed, and those waiting

    @property
    def max_upload_bytes(self) -> int:
        """The largest file accepted."""
        return self.limits.upload_bytes

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold a place among the changes in progress (the one indexed and those waiting).

        Raises:
            Busy: every place is taken.
        """
        if not self._tickets.acquire(blocking=False):
            raise Busy(f"Another change to the documents is being indexed and {self.limits.waiting_changes} more "
                       f"{'is' if self.limits.waiting_changes == 1 else 'are'} waiting: try again when they are done.")
        try:
            yield
        finally:
            self._tickets.release()

    @contextlib.contextmanager
    def _building(self, progress: Progress) -> Iterator[None]:
        """The build lock, saying on the progress bar when the change waits for another."""
        if not self._build_lock.acquire(blocking=False):
            progress(0.05, "Waiting for the change before this one to be indexed")
            self._build_lock.acquire()
        try:
            yield
        finally:
            self._build_lock.release()

    # The record of what the app did -------------------------------------------------------------------

    def _registry(self) -> dict:
        """``{file: {"uploaded": bool, "hash": str, "indexed_at": str}}`` from ``.qa-uploads.json``."""
        path = self.docs_dir / REGISTRY
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("files", {})
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as err:
            logger.warning("ignoring %s (%s): uploads recorded there count as the user's files", path, err)
            return {}

    def _save_registry(self, files: dict) -> None:
        path = self.docs_dir / REGISTRY
        tmp = path.with_name(f"{REGISTRY}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"files": files}, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    def uploaded(self, doc: "Document") -> bool:
        """Whether the app uploaded ``doc``'s file and it still holds the bytes uploaded."""
        entry = self._registry().get(doc.file, {})
        return bool(entry.get("uploaded")) and entry.get("hash") == doc.source_hash

    # What the panel lists -------------------------------------------------------------------------------

    def rows(self) -> list[dict]:
        """One row per indexed document, by title: id, title, file, size ("3 pages", "12 paragraphs"),
        passages, when indexed, and whether the app uploaded it."""
        qa = self.live.current
        passages: dict[str, int] = {}
        for p in qa.retriever.index.passages:
            passages[p.doc_id] = passages.get(p.doc_id, 0) + 1
        registry = self._registry()
        built_at = qa.retriever.index.manifest.get("built_at", "")
        rows = []
        for doc in qa.documents.values():
            entry = registry.get(doc.file, {})
            same = entry.get("hash") == doc.source_hash
            size = plural(len(doc.pages), "page") if doc.pages else plural(
                doc.paragraph_at(max(0, len(doc.text.rstrip()) - 1)), "paragraph")
            rows.append({"id": doc.id, "title": doc.title, "file": doc.file, "size": size,
                         "passages": passages.get(doc.id, 0), "indexed_at": (entry.get("indexed_at") if same else None) or built_at,
                         "uploaded": bool(entry.get("uploaded")) and same})
        return sorted(rows, key=lambda r: (r["title"].lower(), r["id"]))

    def skipped(self) -> list[dict]:
        """The files of the folder that indexing could not read, by file: file and reason (an index built
        before reasons were recorded gives none: the server's log has it)."""
        rows = self.live.current.retriever.index.manifest.get("skipped") or []
        return [{"file": r["file"], "reason": r.get("reason") or "it could not be read (the server's log says why)"}
                for r in sorted(rows, key=lambda r: r["file"])]

    # Changes --------------------------------------------------------------------------------------------

    def upload(self, name: str, data: bytes, progress: Progress = _no_progress) -> Change:
        """Check ``data``, save it in the folder as ``name`` (or a free name beside it) and index it.

        Raises:
            InvalidUpload: the file fails a check (:mod:`qa.app.uploads`); nothing is written.
            Busy: as many changes as may wait are waiting; nothing is written.
            IndexUnavailable: the index could not be updated (e.g. another build holds it); the file is removed again.
        """
        with self._turn():
            progress(0.02, f"Checking {name}")
            doc = check_upload(name, data, self.limits, self._chunking())
            with self._building(progress):
                return self._add(name, data, doc, progress)

    def _add(self, name: str, data: bytes, doc: "Document", progress: Progress) -> Change:
        """Save a checked upload and index it (the caller holds the build lock)."""
        same = next((d for d in self.live.current.documents.values() if d.source_hash == doc.source_hash), None)
        if same is not None:
            return Change(f'{name} is already indexed, with the same content, as "{same.title}" ({same.file}): '
                          "nothing to do.", same.id, same.file)
        path = self._save(name, data)
        registry = self._registry()
        registry[path.name] = {"uploaded": True, "hash": doc.source_hash}
        self._save_registry(registry)
        try:
            stats, seconds = self._rebuild(progress)
        except BaseException:
            path.unlink(missing_ok=True)
            registry.pop(path.name, None)
            self._save_registry(registry)
            raise
        new = next((d for d in self.live.current.documents.values() if d.file == path.name), None)
        if new is None:  # indexing skipped it after all (it changed on disk in between)
            raise InvalidUpload(f"{path.name} was saved but not indexed: see the server's log.")
        renamed = f" A file named {name} was already there, so it was saved as {path.name}." if path.name != name else ""
        passages = sum(1 for p in self.live.current.retriever.index.passages if p.doc_id == new.id)
        size = plural(len(new.pages), "page") if new.pages else plural(new.paragraph_at(len(new.text.rstrip()) - 1),
                                                                          "paragraph")
        return Change(f'Indexed "{new.title}" ({path.name}): {size}, {plural(passages, "passage")}, in {seconds:.1f} s.'
                      f"{renamed}", new.id, path.name, stats.embedded, seconds)

    def delete(self, doc_id: str, confirm: bool = False, progress: Progress = _no_progress) -> Change:
        """Take a document out of the folder and the index.

        An uploaded file is removed; a file the user put there is moved to ``.qa-trash/`` in the folder,
        and only with ``confirm``.

        Raises:
            InvalidInput: no indexed document has that id, or it is the last one.
            NeedsConfirmation: the file is the user's and ``confirm`` is not ``True``; nothing was changed.
            Busy: as many changes as may wait are waiting; nothing was changed.
        """
        if not isinstance(confirm, bool):  # "false" is a true value: only a real boolean confirms
            raise InvalidInput(f"confirm is true or false, got {shown(str(confirm))}.")
        if isinstance(doc_id, str) and len(doc_id) > self.limits.id_chars:
            raise InvalidInput(f"A document id is at most {self.limits.id_chars:,} characters, got {len(doc_id):,}: "
                               "pick one from the documents list.")
        with self._turn(), self._building(progress):
            documents = self.live.current.documents
            doc = documents.get(doc_id) if isinstance(doc_id, str) else None
            if doc is None:
                what = shown(doc_id) if isinstance(doc_id, str) else f"of type {type(doc_id).__name__}"
                raise InvalidInput(f"No indexed document has the id {what}: pick one from the documents list.")
            if len(documents) == 1:
                raise InvalidInput(f'"{doc.title}" is the only document: upload another before deleting it.')
            path = self.docs_dir / doc.file
            uploaded = self.uploaded(doc)
            if not uploaded and not confirm:
                raise NeedsConfirmation(
                    f"{doc.file} was not uploaded here: it is your own file. Deleting moves it to {TRASH}/ in the "
                    "documents folder (move it back from there to restore it) and takes it out of the index. "
                    "Confirm to go on.")
            progress(0.05, f"Removing {doc.file}")
            trash = self.docs_dir / TRASH
            trash.mkdir(exist_ok=True)
            moved = trash / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}-{path.name}"
            os.replace(path, moved)
            try:
                stats, seconds = self._rebuild(progress)
            except BaseException:
                os.replace(moved, path)
                raise
            registry = self._registry()
            registry.pop(doc.file, None)
            self._save_registry(registry)
            if uploaded:
                moved.unlink()
                said = f'Deleted "{doc.title}" ({doc.file}).'
            else:
                said = f'Removed "{doc.title}" from the index; the file is in {TRASH}/{moved.name} in the documents folder.'
        return Change(said, doc.id, doc.file, stats.embedded, seconds)

    def rescan(self, progress: Progress = _no_progress) -> Change:
        """Index what changed in the folder since the app loaded it (files added or edited outside the app).

        Raises:
            Busy: as many changes as may wait are waiting.
        """
        with self._turn(), self._building(progress):
            stats, seconds = self._rebuild(progress)
        if not stats.written:
            return Change("The index is up to date with the folder.")
        parts = [f"{plural(len(ids), 'document')} {what}" for ids, what in
                 ((stats.added, "added"), (stats.changed, "changed"), (stats.removed, "removed")) if ids]
        return Change(f"Re-indexed the folder: {', '.join(parts) or 'file dates updated'}.", embedded=stats.embedded,
                      seconds=seconds)

    # Helpers --------------------------------------------------------------------------------------------

    def _save(self, name: str, data: bytes) -> Path:
        """Write ``data`` into the folder as ``name``, or as "stem (2).ext" and so on when that name, or
        the id it would give, is taken; never over an existing file."""
        root = self.docs_dir
        taken_ids = set(document_ids(root, corpus_files(root)).values())
        tmp = root / f".qa-upload-{uuid.uuid4().hex}.part"  # hidden: never a document
        tmp.write_bytes(data)
        try:
            stem, suffix = Path(name).stem, Path(name).suffix
            for n in range(1, 1000):
                candidate = root / (name if n == 1 else f"{stem} ({n}){suffix}")
                if candidate.stem in taken_ids or candidate.exists() or candidate.is_symlink():
                    continue
                try:
                    os.link(tmp, candidate)  # fails if the name was taken meanwhile: never overwrites
                except FileExistsError:
                    continue
                return candidate
            raise InvalidUpload(f"Too many files named like {name}: rename it and upload it again.")
        finally:
            tmp.unlink(missing_ok=True)

    def _chunking(self) -> "ChunkConfig | None":
        """The passage settings of the index served now (``None``: the defaults)."""
        from qa.ingest.chunking import ChunkConfig

        chunking = self.live.current.retriever.index.manifest.get("chunking")
        return ChunkConfig(**chunking) if chunking else None

    def _rebuild(self, progress: Progress) -> tuple["BuildStats", float]:
        """Update the index of the folder (only new and changed files are embedded) and, if it changed,
        serve the new one. The caller holds the build lock.

        Raises:
            IndexUnavailable: the build refused or failed (another program writing the index, a full
                disk, the folder gone); the visitor hears what to do, the log has the details.
        """
        from qa.retrieval.retriever import Retriever
        from qa.stores.base import IndexLockedError
        from qa.stores.local.build import build_index

        t0 = time.perf_counter()
        current = self.live.current
        encoder = current.retriever.encoder
        progress(0.1, "Reading the folder and embedding new passages")
        try:
            stats = build_index(self.docs_dir, self.index_dir, encoder=encoder, chunk_config=self._chunking(),
                                show_progress=True)
        except IndexLockedError as err:  # its message names the other process and host: for the log only
            logger.warning("%s", err)
            raise IndexUnavailable("Another program (such as qa index) is updating the index: try again when it "
                                   "has finished.") from None
        except UserError as err:
            logger.error("updating the index failed: %s", err)
            raise IndexUnavailable("The server could not update the index (see its log); the documents are as "
                                   "they were.") from None
        if stats.written:
            progress(0.9, "Loading the new index")
            self.live.swap(current.with_retriever(Retriever.load(self.index_dir, encoder=encoder)))
            self._stamp(stats.added + stats.changed)
        progress(1.0, "Done")
        return stats, time.perf_counter() - t0

    def _stamp(self, doc_ids: list[str]) -> None:
        """Record now as the time ``doc_ids`` were indexed (with the hash indexed)."""
        if not doc_ids:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        registry = self._registry()
        for doc_id in doc_ids:
            doc = self.live.current.documents[doc_id]
            entry = registry.get(doc.file, {})
            if entry.get("hash") not in (None, doc.source_hash):
                entry = {}  # another file by that name than the one uploaded: the user's now
            registry[doc.file] = {**entry, "hash": doc.source_hash, "indexed_at": now}
        self._save_registry(registry)
