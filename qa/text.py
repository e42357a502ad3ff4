"""Text helpers more than one stage uses: SQuAD's answer normalisation, content words, a count with its noun.

Example:
    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'
    >>> sorted(content_words("When did the trusts go live?"))
    ['go', 'live', 'trusts']
    >>> plural(1, "document"), plural(1200, "passage")
    ('1 document', '1,200 passages')
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)
_STOP = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their "
    "there these this those to was were what when where which who whom whose why will with would you".split()
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def content_words(text: str) -> set[str]:
    """The lower-cased words of ``text`` that carry its meaning: not articles, pronouns, question words and
    the like."""
    return {w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP}


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, with an "s" unless ``n`` is 1 (for nouns whose plural is that regular)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
