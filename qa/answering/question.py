"""Asking: what answers a question (:class:`Answerer`), and the one check a question passes where it enters.

It imports nothing heavy, so the command line refuses a bad question before any model loads.

Example:
    >>> check_question("  When do primary care trusts go live? ")
    'When do primary care trusts go live?'
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, Sequence, runtime_checkable

from qa.errors import InvalidInput
from qa.retrieval import DEFAULT_MODE
from qa.types import Answer

logger = logging.getLogger(__name__)

# The most of a question the pipeline reads: the reader keeps 64 tokens of it and the encoder 256 word pieces,
# so a longer question is cut here once, before it is tokenized or becomes a cache key.
MAX_QUESTION_CHARS = 4096


def check_question(question: object, max_chars: int | None = None) -> str:
    """``question`` stripped and cut to :data:`MAX_QUESTION_CHARS`, when it is text a person can ask.

    A question it returned passes it again unchanged, so each place a request may enter calls it.

    Args:
        question: what arrived; a command-line argument holding bytes that are not UTF-8 arrives as a
            string with lone surrogates (Python's ``surrogateescape``), and so does JSON with ``\\udcff``.
        max_chars: refuse a question longer than this (a server's limit) instead of cutting it; ``None``:
            any length, cut.

    Raises:
        InvalidInput: not a string, longer than ``max_chars``, holding a NUL or bytes that are not UTF-8,
            or blank.
    """
    if not isinstance(question, str):
        raise InvalidInput(f"The question must be text, got {type(question).__name__}: pass a string.")
    if max_chars is not None and len(question) > max_chars:
        raise InvalidInput(f"The question is {len(question):,} characters long, over the {max_chars:,} the app "
                           "reads: ask it in fewer words.")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        logger.info("question of %d characters cut to %d", len(question), MAX_QUESTION_CHARS)
        question = question[:MAX_QUESTION_CHARS].rstrip()
    if "\x00" in question or any("\ud800" <= ch <= "\udfff" for ch in question):
        raise InvalidInput("The question contains characters that are not text (a NUL, or bytes that are not "
                           "UTF-8): type it again or save it as UTF-8.")
    if not question:
        raise InvalidInput("The question is empty: ask a question in words.")
    return question


@runtime_checkable
class Answerer(Protocol):
    """What answers a question: the pipeline (:class:`qa.answering.pipeline.QA`), the app's pipeline that follows
    each new index (:class:`qa.app.documents.LiveQA`) and its answer cache (:class:`qa.app.cache.AnswerCache`),
    each checking the question with :func:`check_question`."""

    @property
    def threshold(self) -> float:
        """The default reader's calibrated answer threshold."""
        ...

    def ask(self, question: str, top_k: int | None = None, mode: str = DEFAULT_MODE, threshold: float | None = None,
            history: Sequence[Any] | None = None, doc_ids: Sequence[str] | None = None,
            reader: str | None = None) -> Answer:
        """Answer ``question`` (see :meth:`qa.answering.pipeline.QA.ask` for the arguments and errors)."""
        ...
