"""The values that flow through the pipeline, carrying exact character offsets.

The invariant that makes every citation checkable: ``document.text[p.start:p.end] == p.text`` for
every passage and ``document.text[c.start:c.end] == c.quote`` for every citation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Document:
    """A source document: ``id`` is its path relative to the corpus folder, without extension."""

    id: str
    title: str
    path: str
    text: str
    # (start offset, page number) pairs for paginated formats (PDF); empty otherwise.
    pages: tuple[tuple[int, int], ...] = ()
    file: str = ""  # path relative to the corpus folder, "/"-separated, as listed by ingest.corpus_files
    source_hash: str = ""  # of the bytes that were read to make ``text`` (qa.ingest.documents.source_hash)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or ``None`` for unpaginated documents."""
        page = None
        for start, number in self.pages:
            if start > offset:
                break
            page = number
        return page

    def location_at(self, offset: int) -> str:
        """A human-readable place: "page 2" for paginated documents, else "paragraph 4"."""
        page = self.page_at(offset)
        return f"page {page}" if page is not None else f"paragraph {self.paragraph_at(offset)}"

    def paragraph_at(self, offset: int) -> int:
        """The 1-based paragraph (run of non-blank lines) holding character ``offset``."""
        paragraph, prev_blank, pos = 0, True, 0
        for line in self.text.splitlines(keepends=True):
            if pos > offset:
                break
            blank = not line.strip()
            if not blank and prev_blank:
                paragraph += 1
            prev_blank, pos = blank, pos + len(line)
        return max(paragraph, 1)


@dataclass(frozen=True)
class Passage:
    """A contiguous span of a document: ``text == document.text[start:end]``."""

    id: str
    doc_id: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its score and 1-based rank."""

    passage: Passage
    score: float
    rank: int
    dense_rank: int | None = None  # its rank in the dense list (None: not among the candidates)
    keyword_rank: int | None = None  # and in the keyword (BM25) list

    def to_dict(self, title: str) -> dict:
        """The JSON row of ``qa search --json``, ``qa ask --json`` and the app's ``/ask``."""
        p = self.passage
        return {"rank": self.rank, "score": round(self.score, 6), "doc_id": p.doc_id,
                "title": title, "start": p.start, "end": p.end, "text": p.text}


@dataclass(frozen=True)
class Citation:
    """Where an answer comes from: ``document.text[start:end] == quote``."""

    doc_id: str
    title: str
    start: int
    end: int
    quote: str
    location: str = ""  # human-readable place in the document, e.g. "paragraph 4" or "page 2"

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "title": self.title, "start": self.start, "end": self.end, "quote": self.quote,
                "location": self.location}


@dataclass(frozen=True)
class Span:
    """A candidate answer found by the reader, in document coordinates."""

    text: str
    score: float
    doc_id: str
    start: int
    end: int
    passage_id: str
    occurrences: tuple[tuple[str, int, int], ...] = ()  # (doc_id, start, end) of equal answers merged in


@dataclass(frozen=True)
class Answer:
    """The pipeline's reply: a short verbatim span (or ``None`` when it abstains) and its sources."""

    question: str
    text: str | None
    score: float
    abstained: bool
    evidence: str  # the whole sentence around the span (its first citation's quote); empty when abstaining
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    alternatives: tuple[Span, ...] = ()  # the reader's candidates, the answer (or the best refused) first
    timings: dict = field(default_factory=dict, compare=False)  # retrieve_ms, read_ms, total_ms
    searched: str = ""  # the query retrieval used when it was not the question alone (a follow-up); else ""
    reader: str = ""  # which reader read it: "accurate", "fast" or a reader folder's name
