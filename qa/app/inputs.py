"""Checks on what a request names beside its question (the question itself: :mod:`qa.answering.question`)."""

from __future__ import annotations

from qa.errors import InvalidInput


def check_doc_ids(doc_ids: object, max_chars: int) -> list[str] | None:
    """The document ids a question is limited to, as a list (``None`` or ``[]``: every document).

    Raises:
        InvalidInput: not a list of strings, or an id longer than ``max_chars`` (no indexed id is).
    """
    if doc_ids is None or doc_ids == []:
        return None
    if not isinstance(doc_ids, (list, tuple)) or not all(isinstance(d, str) for d in doc_ids):
        raise InvalidInput("doc_ids is a list of document ids (strings), as /upload lists them.")
    longest = max(len(d) for d in doc_ids)
    if longest > max_chars:
        raise InvalidInput(f"A document id is at most {max_chars:,} characters, got one of {longest:,}: pass the "
                           "ids /upload lists.")
    return list(doc_ids)
