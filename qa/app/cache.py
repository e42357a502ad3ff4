"""The app's answer cache: ``QA.ask`` behind a least-recently-used cache bounded in entries and bytes.

Example:
    >>> cache = AnswerCache(qa, size=1024, max_bytes=64 * 2**20)
    >>> cache.ask("When do primary care trusts go live?").text
    'April 2000'
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from typing import Any, Sequence

from qa.answering.question import Answerer, check_question
from qa.errors import InvalidInput
from qa.retrieval import DEFAULT_MODE
from qa.retrieval.followup import as_turns
from qa.types import Answer

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 1024  # answers kept
DEFAULT_MAX_BYTES = 64 * 2**20  # bytes of keys and answers kept
ENTRY_OVERHEAD = 200  # bytes counted for each object an entry holds besides its strings (tuples, dataclasses)


def answer_bytes(answer: object) -> int:
    """An estimate of the memory an answer holds of its own.

    Counts its strings (question, answer, evidence, quotes, titles, candidate spans) and a fixed overhead
    per object. The retrieved passages are not counted: they belong to the index, which every answer shares.
    """
    if not isinstance(answer, Answer):
        return sys.getsizeof(answer)
    strings = [answer.question, answer.text or "", answer.evidence]
    strings += [s for c in answer.citations for s in (c.quote, c.title, c.location)]
    strings += [s.text for s in answer.alternatives]
    objects = 1 + len(answer.citations) + len(answer.hits) + len(answer.alternatives)
    return sum(sys.getsizeof(s) for s in strings) + ENTRY_OVERHEAD * objects


class AnswerCache:
    """An :class:`~qa.answering.question.Answerer` behind a least-recently-used cache keyed by (question, top_k,
    mode, threshold).

    The question becomes a key as the pipeline reads it (:func:`~qa.answering.question.check_question`:
    stripped and cut); the cache holds at most ``size`` answers and ``max_bytes`` bytes (keys
    plus :func:`answer_bytes`), evicting the least recently used. Sound because the index and models are
    read-only while the app serves. Concurrent requests for the same key wait for one computation
    instead of each running the reader.

    Args:
        qa: the shared pipeline (:class:`~qa.answering.pipeline.QA` or :class:`~qa.app.documents.LiveQA`).
        size: answers kept; 0 disables caching (every request runs the pipeline).
        max_bytes: bytes kept; an answer larger than this is returned but not kept.

    Raises:
        InvalidInput: a negative ``size`` or ``max_bytes``.
    """

    def __init__(self, qa: Answerer, size: int = DEFAULT_SIZE, max_bytes: int = DEFAULT_MAX_BYTES):
        if size < 0:
            raise InvalidInput(f"The cache size must be 0 or more, got {size}.")
        if max_bytes < 0:
            raise InvalidInput(f"The cache's byte bound must be 0 or more, got {max_bytes}.")
        self.qa = qa
        self.size = size
        self.max_bytes = max_bytes
        self.nbytes = 0  # bytes held now, by the estimate
        self._done: OrderedDict[tuple, tuple[Answer, int]] = OrderedDict()  # key -> (answer, its bytes)
        self._pending: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._done)

    @property
    def threshold(self) -> float:
        return self.qa.threshold

    def ask(self, question: str, top_k: int | None = None, mode: str = DEFAULT_MODE, threshold: float | None = None,
            history: Sequence[Any] | None = None, doc_ids: Sequence[str] | None = None,
            reader: str | None = None) -> Answer:
        """Like :meth:`qa.answering.pipeline.QA.ask` (same errors); the conversation so far, when given,
        is part of the key (its questions and the documents their answers cited), and so are ``doc_ids``
        and ``reader``. A pipeline with a ``generation`` (:class:`qa.app.documents.LiveQA`, whose index
        changes) keys its answers by it too. An answer read by a busy server's fallback reader is not
        kept: the same question asked later, in a quiet moment, is read by the reader it asked for."""
        question = check_question(question)
        if threshold is None and reader is None:
            threshold = self.qa.threshold
        threshold = None if threshold is None else float(threshold)
        turns = as_turns(history)
        context = {"history": list(history)} if turns else {}
        if doc_ids is not None:
            context["doc_ids"] = doc_ids
        if reader is not None:
            context["reader"] = reader
        if self.size == 0 or self.max_bytes == 0 or not (doc_ids is None or isinstance(doc_ids, (list, tuple))):
            return self.qa.ask(question, top_k=top_k, mode=mode, threshold=threshold, **context)
        key = (question, None if top_k is None else int(top_k), mode,
               None if threshold is None else round(threshold, 6), turns,
               None if doc_ids is None else tuple(sorted(map(str, doc_ids))), getattr(self.qa, "generation", 0),
               reader)
        wanted = reader or getattr(self.qa, "reader_name", "")
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key][0]
            waiting = self._pending.get(key)
            if waiting is None:
                self._pending[key] = threading.Event()
        if waiting is not None:
            waiting.wait()
            with self._lock:
                if key in self._done:
                    return self._done[key][0]
            # The first try failed, or its answer was too large to keep.
            return self.qa.ask(question, top_k=top_k, mode=mode, threshold=threshold, **context)
        answer = None
        try:
            answer = self.qa.ask(question, top_k=top_k, mode=mode, threshold=threshold, **context)
            return answer
        finally:
            with self._lock:
                try:
                    read_by = getattr(answer, "reader", None)
                    if answer is not None and (not read_by or read_by == wanted):
                        self._keep(key, answer)
                finally:  # whatever happened, the questions waiting on this one go on
                    self._pending.pop(key).set()

    def _keep(self, key: tuple, answer: Answer) -> None:
        """Store one answer and evict down to the bounds (the caller holds the lock)."""
        cost = sys.getsizeof(key[0]) + sum(sys.getsizeof(t.question) for t in key[4]) + ENTRY_OVERHEAD + answer_bytes(answer)
        if cost > self.max_bytes:
            logger.info("not caching an answer of about %d bytes (bound %d)", cost, self.max_bytes)
            return
        self._done[key] = (answer, cost)
        self.nbytes += cost
        while len(self._done) > self.size or self.nbytes > self.max_bytes:
            _, (_, evicted) = self._done.popitem(last=False)
            self.nbytes -= evicted
