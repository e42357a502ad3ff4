"""Sentence-aware passages with exact character offsets.

Sentences come from nupunkt (a maintained Punkt implementation) inside blocks separated by blank
lines; consecutive sentences are packed into passages of about ``chunk_size`` characters, and each
passage repeats the last sentences of the previous one up to ``chunk_overlap`` characters. No passage
starts or ends inside a sentence, unless one sentence alone is longer than ``chunk_size``; then it is
cut at whitespace.

Example:
    >>> from qa.ingest.chunking import ChunkConfig, chunk_document
    >>> passages = chunk_document(doc, ChunkConfig(chunk_size=800, chunk_overlap=200))
    >>> all(doc.text[p.start:p.end] == p.text for p in passages)
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.errors import InvalidInput
from qa.types import Document, Passage

_BLOCK_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


@dataclass(frozen=True)
class ChunkConfig:
    """Passage size and overlap in characters. The defaults retrieve best on the bundled corpus of the sizes
    tried (``qa index --chunk-size S --chunk-overlap O`` then ``qa eval``; docs/research-log.md).

    Raises:
        InvalidInput: a size below 50, an overlap not in ``[0, chunk_size)``, or a value that is not an int.
    """

    chunk_size: int = 800
    chunk_overlap: int = 200

    def __post_init__(self) -> None:
        for name in ("chunk_size", "chunk_overlap"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"{name} must be a whole number of characters, got {value!r}.")
        if self.chunk_size < 50:
            raise InvalidInput(f"chunk_size must be at least 50 characters, got {self.chunk_size}.")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise InvalidInput(
                f"chunk_overlap must be >= 0 and smaller than chunk_size ({self.chunk_size}), got {self.chunk_overlap}."
            )


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence, trimmed of surrounding whitespace, in order."""
    import nupunkt

    spans: list[tuple[int, int]] = []
    for b_start, b_end in _block_bounds(text):
        for _, (s, e) in nupunkt.sent_spans_with_text(text[b_start:b_end]):
            spans.extend(_split_lines(text, b_start + s, b_start + e))
    return [(s, e) for s, e in (_trim(text, s, e) for s, e in spans) if e > s]


def _block_bounds(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for m in _BLOCK_BREAK.finditer(text):
        bounds.append((start, m.start()))
        start = m.end()
    bounds.append((start, len(text)))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def _split_lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split a sentence at newlines that end a line (headings, one-line paragraphs)."""
    out, cur = [], start
    for m in re.finditer(r"\n", text[start:end]):
        nl = start + m.start()
        if _is_soft(text, nl):
            continue
        out.append((cur, nl))
        cur = nl + 1
    out.append((cur, end))
    return out


def _is_soft(text: str, nl: int) -> bool:
    """A newline inside a sentence: the line ends in a letter, digit, comma or hyphen and the next
    starts in lower case (hard-wrapped prose). Any other newline ends the sentence."""
    before = text[nl - 2] if nl >= 2 and text[nl - 1] == "\r" else text[nl - 1] if nl >= 1 else ""
    after = text[nl + 1 : nl + 40].lstrip(" \t")[:1]
    return bool(before) and (before.isalnum() or before in ",-") and after.islower()


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cut_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence into pieces of at most ``limit`` characters, at whitespace."""
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start + 1, start + limit + 1)
        if cut <= start:
            cut = start + limit
        pieces.append(_trim(text, start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return [(s, e) for s, e in pieces if e > s]


def chunk_document(doc: Document, config: ChunkConfig | None = None) -> list[Passage]:
    """Split ``doc`` into passages; ``doc.text[p.start:p.end] == p.text`` for each one."""
    config = config or ChunkConfig()
    units: list[tuple[int, int]] = []
    for s, e in sentence_spans(doc.text):
        units.extend(_cut_long(doc.text, s, e, config.chunk_size) if e - s > config.chunk_size else [(s, e)])
    passages: list[Passage] = []
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j][1] - units[i][0] <= config.chunk_size:
            j += 1
        start, end = units[i][0], units[j - 1][1]
        passages.append(Passage(f"{doc.id}:{start}-{end}", doc.id, start, end, doc.text[start:end]))
        if j >= len(units):
            break
        # Next passage starts with the trailing sentences that fit in the overlap, always moving on.
        k = j
        while k - 1 > i and end - units[k - 1][0] <= config.chunk_overlap:
            k -= 1
        i = k
    return passages


def chunk_documents(docs: list[Document], config: ChunkConfig | None = None) -> list[Passage]:
    """Passages of every document, in document order."""
    return [p for doc in docs for p in chunk_document(doc, config)]
