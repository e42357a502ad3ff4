"""What the reader reads around each retrieved passage: the passage and its neighbours in the same paragraph.

Passages are cut at about 800 characters, so a long paragraph is split and a retrieved passage may
lack the sentence that names what its sentences talk about. The reader's window holds more (384
tokens, about 1,300 characters of English beside the question), so each passage is widened to the
whole paragraph(s) it lies in when they fit in ``budget`` characters, and otherwise by an equal share
of text on each side, cut at whitespace. Widening never crosses a blank line (a paragraph break): the
next paragraph is another subject as often as not, and answers never cross one either.

A widened passage keeps its hit's id, so the answer is still credited to the passage the retriever
ranked; one that falls inside an earlier (better-ranked) widened passage is not read twice.

Example:
    >>> widen(doc, passage, budget=1200)  # the passage's whole paragraph, when it fits
    Passage(id='a:100-900', doc_id='a', start=40, end=1130, text='...')
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from qa.types import Document, Hit, Passage

CONTEXT_CHARS = 1200  # widened passage length; 0 reads the passages as retrieved
_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def _paragraph_bounds(text: str, start: int, end: int, reach: int) -> tuple[int, int]:
    """Start of the paragraph holding ``start`` and end of the one holding ``end``, looking at most
    ``reach`` characters outwards (a bound there when no break is seen)."""
    lo = max(0, start - reach)
    breaks = list(_BREAK.finditer(text, lo, start))
    left = breaks[-1].end() if breaks else lo
    found = _BREAK.search(text, end, min(len(text), end + reach))
    right = found.start() if found else min(len(text), end + reach)
    return left, right


def widen(doc: Document, passage: Passage, budget: int = CONTEXT_CHARS) -> Passage:
    """``passage`` grown within its paragraph(s) towards ``budget`` characters (never shrunk)."""
    room = budget - (passage.end - passage.start)
    if room <= 0:
        return passage
    text = doc.text
    left, right = _paragraph_bounds(text, passage.start, passage.end, room)
    if right - left > budget:  # the paragraph is longer than the budget: an equal share each side
        half = room // 2
        before, after = passage.start - left, right - passage.end
        take_left = min(before, max(half, room - after))
        take_right = min(after, room - take_left)
        left, right = passage.start - take_left, passage.end + take_right
        if left < passage.start:  # start and end on whitespace, not inside a word
            cut = text.find(" ", left, passage.start)
            left = cut + 1 if cut >= 0 else passage.start
        if right > passage.end:
            cut = text.rfind(" ", passage.end, right)
            right = cut if cut >= 0 else passage.end
    while left < passage.start and text[left].isspace():
        left += 1
    while right > passage.end and text[right - 1].isspace():
        right -= 1
    if (left, right) == (passage.start, passage.end):
        return passage
    return Passage(passage.id, passage.doc_id, left, right, text[left:right])


def reading_passages(hits: Sequence[Hit], documents: Mapping[str, Document], budget: int = CONTEXT_CHARS) -> list[Passage]:
    """The passages of ``hits`` widened (best first), leaving out any inside an earlier one; with
    ``budget`` 0, the passages as retrieved."""
    if budget <= 0:
        return [hit.passage for hit in hits]
    out: list[Passage] = []
    for hit in hits:
        passage = hit.passage
        doc = documents.get(passage.doc_id)
        if doc is not None and doc.text[passage.start:passage.end] == passage.text:
            passage = widen(doc, passage, budget)
        if any(p.doc_id == passage.doc_id and p.start <= passage.start and passage.end <= p.end for p in out):
            continue
        out.append(passage)
    return out
