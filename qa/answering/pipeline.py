"""Question in, cited answer out: retrieve passages, read spans, quote the sentence, or abstain.

Example:
    >>> from qa import QA
    >>> qa = QA.load("embeddings/")
    >>> answer = qa.ask("When do primary care trusts go live?")
    >>> answer.text, answer.citations[0].doc_id
    ('April 2000', '000_514f065cc880a116')
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from qa.answering.calibrator import Calibrator
from qa.answering.context import reading_passages
from qa.answering.features import candidate_features
from qa.embedding.encoder import Encoder
from qa.errors import InvalidInput, UnsafeDestination
from qa.ingest.chunking import sentence_spans
from qa.reading.reader import DEFAULT_READER_DIR, Reader, check_question
from qa.retrieval.followup import FollowUpSearch
from qa.retrieval.retriever import MAX_QUERY_CHARS, Retriever
from qa.types import Answer, Citation, Document, Hit, Span

logger = logging.getLogger(__name__)

CALIBRATION_NAME = "calibration.json"  # in the reader's folder, next to its weights
FALLBACK_THRESHOLD = 0.3  # used only for a reader without a calibration file
DEFAULT_TOP_K = 5  # passages read per question when the reader's calibration doesn't say how many
# Questions whose nearest passage is less similar than this (cosine) are off-topic for the corpus:
# their confidence is scaled down by cosine / RELEVANCE_FLOOR. Measured on all-MiniLM-L6-v2: questions
# about the bundled corpus have 0.43-0.71, off-topic ones 0.09-0.23 (README, "Abstention").
RELEVANCE_FLOOR = 0.35
SENTENCE_CACHE_DOCUMENTS = 256  # documents whose sentence offsets are kept for citations


def calibration_file(reader_dir: str | Path | None = None) -> Path:
    """The calibration file of a reader: ``reader_dir/calibration.json``, or ``reader_dir`` itself when it
    names a ``.json`` file; the packaged reader's when ``None``."""
    path = Path(reader_dir) if reader_dir is not None else DEFAULT_READER_DIR
    return path if path.suffix == ".json" else path / CALIBRATION_NAME


def load_calibration(reader_dir: str | Path | None = None) -> dict:
    """The calibration saved with a reader (``{"threshold": float, ...}``), or ``{}`` when it has none.

    Args:
        reader_dir: the reader's folder (default: the packaged reader), or a calibration ``.json`` file.
    """
    path = calibration_file(reader_dir)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def default_threshold(calibration: dict | None = None, reader_dir: str | Path | None = None) -> float:
    """A reader's calibrated abstention threshold (``FALLBACK_THRESHOLD`` without one).

    Args:
        calibration: :func:`load_calibration`'s result, when the caller has it already.
        reader_dir: the reader whose calibration to read (default: the packaged reader).
    """
    calibration = load_calibration(reader_dir) if calibration is None else calibration
    return float(calibration.get("threshold", FALLBACK_THRESHOLD))


def save_calibration(
    threshold: float, details: dict, reader_dir: str | Path | None = None, *, allow_packaged: bool = False,
    replace: bool = False,
) -> Path:
    """Write a reader's abstention threshold where :meth:`QA.load` reads it for that reader.

    Args:
        threshold: the probability below which the pipeline abstains.
        details: how it was chosen (saved alongside).
        reader_dir: the reader's folder (default: the packaged reader), or a ``.json`` file.
        allow_packaged: permit rewriting the packaged reader's calibration (the shipped default).
        replace: write only ``threshold`` and ``details``; by default what the file held is kept and
            updated (a new threshold keeps the reader's calibrator and bands).

    Returns:
        The file written.

    Raises:
        InvalidInput: ``threshold`` is not a number between 0 and 1.
        UnsafeDestination: the file is the packaged reader's and ``allow_packaged`` is false.
    """
    threshold = _check_threshold(threshold)
    path = calibration_file(reader_dir)
    if path.parent.resolve() == Path(DEFAULT_READER_DIR).resolve() and not allow_packaged:
        raise UnsafeDestination(
            f"refusing to overwrite the packaged reader's calibration ({path}): calibrate your own reader "
            "(--reader DIR), or pass allow_packaged=True to change the shipped default"
        )
    kept = {} if replace else load_calibration(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**kept, "threshold": round(threshold, 6), **details}, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def _check_threshold(threshold: object) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0.0 <= float(threshold) <= 1.0  # NaN fails this too
    ):
        raise InvalidInput(f"the answer threshold must be a number between 0 and 1, got {threshold!r}")
    return float(threshold)


class QA:
    """Retriever and reader together; one instance serves many questions (and threads).

    Args:
        retriever: a loaded :class:`~qa.retrieval.retriever.Retriever`.
        reader: a :class:`~qa.reading.reader.Reader`.
        threshold: answer only when the best span's probability is at least this; ``None`` reads
            the reader's calibrated default (``calibration.json`` in its folder).
        context_chars: each retrieved passage is read within its paragraph, widened to this many
            characters (:mod:`qa.answering.context`; 0 reads passages as retrieved); ``None``: the value
            the reader's calibrator was fitted with.
    """

    def __init__(self, retriever: Retriever, reader: Reader, threshold: float | None = None,
                 context_chars: int | None = None):
        self.retriever = retriever
        self.reader = reader
        calibration = load_calibration(reader.path)
        if not calibration:
            logger.info("reader at %s is uncalibrated (no %s): abstaining below %.2f",
                        reader.path, CALIBRATION_NAME, FALLBACK_THRESHOLD)
        self.threshold = _check_threshold(default_threshold(calibration) if threshold is None else threshold)
        self.relevance_floor = float(calibration.get("relevance_floor", RELEVANCE_FLOOR))
        self.context_chars = int(calibration.get("context_chars", 0) if context_chars is None else context_chars)
        # How many passages a question reads by default: as many as the calibrator's features were measured on
        # (how many passages agree, their ranks); a caller's top_k still reads more or fewer.
        self.top_k = int(calibration.get("top_k", DEFAULT_TOP_K))
        # A learned P(right) for this reader's candidates; without one, the span score scaled by relevance.
        self.calibrator = Calibrator.from_dict(calibration["calibrator"]) if "calibrator" in calibration else None
        # A calibrator fitted on every candidate (not only the reader's best) also chooses the answer:
        # the candidate most likely right, rather than the reader's highest-scoring span.
        self.picks = bool(calibration.get("picks")) and self.calibrator is not None
        self.bands = tuple(calibration.get("bands", ()))  # [{"name", "min", "precision"}], most confident first
        # Sentence offsets of recently cited documents (least recently used dropped first); the lock
        # guards only this dict, never the splitting.
        self._sentences: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self.followups = FollowUpSearch(retriever)

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "embeddings",
        reader_dir: str | Path | None = None,
        threshold: float | None = None,
        encoder: Encoder | None = None,
        reader_runtime: str | None = None,
        context_chars: int | None = None,
    ) -> "QA":
        """Load the index at ``index_dir`` and the reader (default: the packaged one, on its default runtime)."""
        return cls(Retriever.load(index_dir, encoder=encoder), Reader.load(reader_dir, runtime=reader_runtime), threshold,
                   context_chars)

    @property
    def documents(self) -> dict[str, Document]:
        return self.retriever.documents

    def ask(self, question: str, top_k: int | None = None, mode: str = "hybrid", threshold: float | None = None,
            history: Sequence[Any] | None = None, doc_ids: Sequence[str] | None = None) -> Answer:
        """Answer ``question`` from the ``top_k`` passages retrieved with ``mode``.

        Args:
            top_k: passages to read; ``None``: :attr:`top_k`, the number the reader's calibration was
                fitted on (``calibration.json``, ``"top_k"``).
            history: the conversation so far, oldest first: earlier questions (text), or earlier
                :class:`Answer` values or ``/ask`` objects (their citations tell which document the
                previous answer came from). A follow-up ("And when was it founded?") is then searched
                with the earlier turns' key terms and the previous answer's document favoured
                (:mod:`qa.retrieval.followup`); the reader reads the question as asked, and
                ``Answer.searched`` says what was searched. ``None`` or ``[]``: the question alone.
            doc_ids: search only these documents (ids); ``None`` searches them all. The question's
                relevance is then its cosine to the nearest passage of these documents.

        Raises:
            InvalidInput: the question is not text, is empty or holds characters that are not text;
                bad ``top_k``, ``mode``, ``threshold`` or ``history``; an unknown or empty ``doc_ids``.
        """
        question = check_question(question).strip()[:MAX_QUERY_CHARS]
        if threshold is not None:
            _check_threshold(threshold)
        t0 = time.perf_counter()
        if doc_ids is not None:
            doc_ids = list(doc_ids) if isinstance(doc_ids, (list, tuple)) else doc_ids  # the retriever checks it
        top_k = self.top_k if top_k is None else top_k
        found = self.followups.search(question, history, top_k=top_k, mode=mode, doc_ids=doc_ids)
        retrieve_ms = (time.perf_counter() - t0) * 1000
        answer = self.answer_from_hits(question, found.hits, threshold, relevance=found.relevance,
                                       searched=found.searched)
        answer.timings.update(retrieve_ms=retrieve_ms, total_ms=retrieve_ms + answer.timings["read_ms"])
        return dataclasses.replace(answer, searched=found.searched) if found.searched else answer

    def answer_from_hits(
        self, question: str, hits: Sequence[Hit], threshold: float | None = None, relevance: float | None = None,
        searched: str | None = None,
    ) -> Answer:
        """Read the given passages (e.g. gold passages in an evaluation) and answer or abstain.

        Args:
            searched: a follow-up's question with the conversation's terms (what was searched). The reader
                reads the question as asked; the calibrator's question features (its words found in the
                answer's sentence) take the searched text, since "Why is it the hardest?" shares no word
                with a sentence that answers it. ``None`` or ``""`` (not a follow-up): the question.
            relevance: the question's cosine similarity with its nearest passage; ``None`` treats the
                question as on-topic. With a calibrator (in the reader's ``calibration.json``) the
                answer's confidence is its P(right) from the candidate's features; without one, the
                span score times ``min(1, relevance / RELEVANCE_FLOOR)``. A calibrator fitted on every
                candidate (``"picks": true`` in the file) also chooses the answer: the candidate with
                the highest P(right), which ``alternatives`` then lists first.
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        t0 = time.perf_counter()
        result = self.reader.read(question, reading_passages(hits, self.documents, self.context_chars))
        spans = list(result.spans)
        # Every candidate's features, the sentence around it as its evidence; citations only for the answer.
        rows = [candidate_features(searched or question, span, spans, result.no_answer_score, hits, relevance,
                                   self._evidence(span)) for span in spans]
        if self.calibrator is not None:
            scores = [self.calibrator.probability(row) for row in rows]
        else:
            scale = 1.0 if relevance is None else min(1.0, max(0.0, relevance) / self.relevance_floor)
            scores = [span.score * scale for span in spans]
        if self.picks and spans:  # most likely right first (a stable sort: ties keep the reader's order)
            order = sorted(range(len(spans)), key=lambda i: -scores[i])
            spans, rows, scores = ([xs[i] for i in order] for xs in (spans, rows, scores))
        score = scores[0] if spans else 0.0
        citations = self._citations(spans[0]) if spans else ()
        read_ms = (time.perf_counter() - t0) * 1000
        common = dict(question=question, score=score, hits=tuple(hits), no_answer_score=result.no_answer_score,
                      alternatives=tuple(spans), timings={"read_ms": read_ms, "total_ms": read_ms},
                      features=rows[0] if rows else {}, candidate_features=tuple(rows))
        if not spans or score < threshold:
            return Answer(text=None, abstained=True, evidence="", **common)
        return Answer(text=spans[0].text, abstained=False, evidence=citations[0].quote,
                      evidence_start=citations[0].start, citations=citations, **common)

    def _evidence(self, span: Span) -> str:
        """The sentence around the span's best place: what its first citation quotes."""
        doc = self.documents[span.doc_id]
        start, end = self._sentence_around(doc, span.start, span.end)
        return doc.text[start:end]

    def _citations(self, span: Span) -> tuple[Citation, ...]:
        """One citation per distinct paragraph holding the answer (its sentence quoted), the best-scoring
        place first: overlapping passages find the same words twice."""
        places = [(span.doc_id, span.start, span.end)] + [o for o in span.occurrences if o != (span.doc_id, span.start, span.end)]
        seen, out = set(), []
        for doc_id, start, end in places:
            doc = self.documents[doc_id]
            s, e = self._sentence_around(doc, start, end)
            key = (doc_id, doc.paragraph_at(s))
            if key in seen:
                continue
            seen.add(key)
            out.append(Citation(doc_id, doc.title, s, e, doc.text[s:e], doc.location_at(s)))
        return tuple(out)

    def _sentence_around(self, doc: Document, start: int, end: int) -> tuple[int, int]:
        """The sentence(s) covering ``[start, end)``; the span itself if no sentence does."""
        spans = self._sentences_of(doc)
        # Sentences are sorted and disjoint: the covering ones run from the first ending after ``start``
        # to the last starting before ``end``.
        first = bisect.bisect_right(spans, start, key=lambda s: s[1])
        last = bisect.bisect_left(spans, end, key=lambda s: s[0])
        if first >= last:
            return start, end
        return min(start, spans[first][0]), max(end, spans[last - 1][1])

    def _sentences_of(self, doc: Document) -> list[tuple[int, int]]:
        """``doc``'s sentence offsets, split outside the lock (two threads may split one document once each)."""
        with self._lock:
            spans = self._sentences.get(doc.id)
            if spans is not None:
                self._sentences.move_to_end(doc.id)
                return spans
        spans = sentence_spans(doc.text)
        with self._lock:
            self._sentences[doc.id] = spans
            self._sentences.move_to_end(doc.id)
            while len(self._sentences) > SENTENCE_CACHE_DOCUMENTS:
                self._sentences.popitem(last=False)
        return spans

    def to_json(self, answer: Answer) -> dict:
        """The ``qa ask --json`` object (also what the app's ``/ask`` endpoint returns)."""
        return {
            "question": answer.question,
            "answer": answer.text,
            "score": round(answer.score, 6),
            "abstained": answer.abstained,
            "evidence": answer.evidence,
            **({"searched": answer.searched} if answer.searched else {}),
            "citations": [c.to_dict() for c in answer.citations],
            "passages": [h.to_dict(self.documents[h.passage.doc_id].title) for h in answer.hits],
        }
