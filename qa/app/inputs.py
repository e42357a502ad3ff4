"""Checks on a question as it arrives from a person (the command line, the chat, the ``/ask`` API)."""

from __future__ import annotations

from qa.errors import InvalidInput


def check_question(question: object) -> str:
    """``question`` stripped, when it is text a person can ask.

    Args:
        question: what arrived; a command-line argument holding bytes that are not UTF-8 arrives as a
            string with lone surrogates (Python's ``surrogateescape``), and so does JSON with ``\\udcff``.

    Raises:
        InvalidInput: not a string, not UTF-8 text, or empty.

    Example:
        >>> check_question("  When do primary care trusts go live? ")
        'When do primary care trusts go live?'
    """
    if not isinstance(question, str):
        raise InvalidInput(f"The question must be text, got {type(question).__name__}.")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The question contains bytes that are not UTF-8 text: "
                           "type it again or save it as UTF-8.") from None
    if not question.strip():
        raise InvalidInput("The question is empty: ask a question in words.")
    return question.strip()
