"""Text helpers more than one stage uses: SQuAD's answer normalisation, a count with its noun.

Example:
    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'
    >>> plural(1, "document"), plural(1200, "passage")
    ('1 document', '1,200 passages')
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, with an "s" unless ``n`` is 1 (for nouns whose plural is that regular)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
