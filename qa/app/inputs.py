"""Checks on a question as it arrives from a person (the command line, the chat, the ``/ask`` API)."""

from __future__ import annotations

from qa.errors import InvalidInput


def check_question(question: object, max_chars: int | None = None) -> str:
    """``question`` stripped, when it is text a person can ask.

    Args:
        question: what arrived; a command-line argument holding bytes that are not UTF-8 arrives as a
            string with lone surrogates (Python's ``surrogateescape``), and so does JSON with ``\\udcff``.
        max_chars: the most characters a question may have (the server's limit); ``None``: any.

    Raises:
        InvalidInput: not a string, longer than ``max_chars``, not UTF-8 text, or empty.

    Example:
        >>> check_question("  When do primary care trusts go live? ")
        'When do primary care trusts go live?'
    """
    if not isinstance(question, str):
        raise InvalidInput(f"The question must be text, got {type(question).__name__}.")
    if max_chars is not None and len(question) > max_chars:
        raise InvalidInput(f"The question is {len(question):,} characters long, over the {max_chars:,} the app "
                           "reads: ask it in fewer words.")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The question contains bytes that are not UTF-8 text: "
                           "type it again or save it as UTF-8.") from None
    if not question.strip():
        raise InvalidInput("The question is empty: ask a question in words.")
    return question.strip()


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
