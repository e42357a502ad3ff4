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
from dataclasses import dataclass
import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

from qa.answering.calibrator import Calibrator
from qa.answering.features import FEATURES, candidate_features
from qa.answering.question import check_question
from qa.embedding.encoder import Encoder
from qa.errors import InvalidInput, UnsafeDestination
from qa.ingest.chunking import sentence_spans
from qa.reading.reader import READER_DIRS, Reader, ReaderResult, is_packaged, reader_dir
from qa.retrieval import DEFAULT_MODE
from qa.retrieval.followup import FollowUpSearch
from qa.retrieval.retriever import Retriever
from qa.types import Answer, Citation, Document, Hit, Passage, Span

logger = logging.getLogger(__name__)

CALIBRATION_NAME = "calibration.json"  # in the reader's folder, next to its weights
FALLBACK_THRESHOLD = 0.3  # used only for a reader without a calibration file
DEFAULT_TOP_K = 5  # passages read per question when the reader's calibration doesn't say how many
# Questions whose nearest passage is less similar than this (cosine) are off-topic for the corpus: without a
# calibrator their confidence is scaled down by cosine / RELEVANCE_FLOOR. It lies between what the embedder gives
# questions about the bundled corpus and off-topic ones (the top score of `qa search QUESTION --mode dense`).
RELEVANCE_FLOOR = 0.35
SENTENCE_CACHE_DOCUMENTS = 256  # documents whose sentence offsets are kept for citations


def calibration_file(reader: str | Path | None = None) -> Path:
    """The calibration file of a reader: ``<folder>/calibration.json`` for a shipped reader's name, a folder,
    or ``None`` (the default reader), or ``reader`` itself when it names a ``.json`` file."""
    if reader is None or str(reader) in READER_DIRS:
        return reader_dir(reader) / CALIBRATION_NAME
    path = Path(reader)
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
    if is_packaged(path.parent) and not allow_packaged:
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


def narrowed(result: ReaderResult, passages: Sequence[Passage], keep: int, focus: int = 0) -> list[Passage]:
    """The ``keep`` passages holding a first reader's best candidates (``result``), in their reading order;
    when its candidates lie in fewer passages, the best-ranked others fill the rest.

    ``focus`` > 0 cuts each passage that holds candidates down to the text from ``focus`` characters before its
    first candidate to ``focus`` after its last (widened to whole words): shorter windows for the second reader
    to read, with the passage's id, so its rank and citation stay the passage's."""
    by_id = {p.id: i for i, p in enumerate(passages)}
    chosen: list[int] = []
    for span in result.spans:  # best first
        i = by_id.get(span.passage_id)
        if i is not None and i not in chosen:
            chosen.append(i)
        if len(chosen) == keep:
            break
    held = set(chosen)
    chosen += [i for i in range(len(passages)) if i not in chosen][: keep - len(chosen)]
    if not focus:
        return [passages[i] for i in sorted(chosen)]
    spans_of = {i: [s for s in result.spans if s.passage_id == passages[i].id] for i in held}
    return [focused(passages[i], spans_of[i], focus) if i in held else passages[i] for i in sorted(chosen)]


def focused(passage: Passage, spans: Sequence[Span], focus: int) -> Passage:
    """``passage`` cut to ``focus`` characters around ``spans`` (its candidates, in document offsets), widened
    to whole words; the whole passage when that is no shorter."""
    low = max(passage.start, min(s.start for s in spans) - focus) - passage.start
    high = min(passage.end, max(s.end for s in spans) + focus) - passage.start
    text = passage.text
    while low > 0 and not text[low - 1].isspace():  # not into the middle of a word
        low -= 1
    while high < len(text) and not text[high].isspace():
        high += 1
    if low == 0 and high == len(text):
        return passage
    return Passage(passage.id, passage.doc_id, passage.start + low, passage.start + high, text[low:high])


@dataclass(frozen=True)
class Scored:
    """An answer with the features of each of its candidates (``answer.alternatives``, in the same order):
    what an evaluation run records, so that a calibrator can be fitted and measured on the run alone."""

    answer: Answer
    features: tuple[dict[str, float], ...]


def _check_fitted_here(calibration: dict, calibrator: Calibrator | None, path: Path) -> None:
    """Refuse a calibration fitted on features this version doesn't compute, or on widened passages (read
    as retrieved now): its probabilities would mean something else.

    Raises:
        InvalidInput: saying which, and how to refit.
    """
    unknown = [f for f in (calibrator.features if calibrator is not None else ()) if f not in FEATURES]
    widened = int(calibration.get("context_chars", 0) or 0)
    if unknown or widened:
        what = (f"features this version does not compute ({', '.join(unknown)})" if unknown
                else f"passages widened to {widened} characters, which this version reads as retrieved")
        raise InvalidInput(f"The calibrator in {path} was fitted on {what}: refit it with qa eval fit-calibrator.")


@dataclass(frozen=True)
class ReaderSetup:
    """A reader with what its calibration says about using it: threshold, calibrator, bands, passages read.

    Args:
        reader: the span reader.
        threshold: answer only when the answer's confidence reaches this.
        calibrator: P(right) of a candidate from its features; ``None``: the span score scaled by relevance.
        picks: the calibrator also chooses the answer among the candidates (fitted on every candidate).
        bands: ``[{"name", "min", "precision", ...}]``, most confident first.
        top_k: passages a question reads by default (what the calibrator's features were measured on).
        relevance_floor: below this cosine to its nearest passage a question's confidence is scaled down
            (used only without a calibrator).
        narrow_to: with ``narrower``, that reader reads the ``top_k`` passages first and this one reads
            only the ``narrow_to`` passages holding its best candidates (a cascade); 0 reads all.
        narrower: the reader that narrows (the fast reader), or ``None``.
        focus: in a cascade, this reader reads only ``focus`` characters around the narrower's candidates in
            each passage (:func:`narrowed`); 0: whole passages.
    """

    reader: Reader
    threshold: float
    calibrator: Calibrator | None = None
    picks: bool = False
    bands: tuple[dict, ...] = ()
    top_k: int = DEFAULT_TOP_K
    relevance_floor: float = RELEVANCE_FLOOR
    narrow_to: int = 0
    narrower: Reader | None = None
    focus: int = 0
    reliability: tuple[dict, ...] = ()  # held-out answers by score tenth: [{"low", "high", "answers", "right"}]

    @property
    def name(self) -> str:
        return str(getattr(self.reader, "name", ""))  # a stand-in reader in a test may have none

    @classmethod
    def of(cls, reader: Reader, threshold: float | None = None, narrower: Reader | None = None,
           narrow_to: int | None = None, focus: int | None = None) -> "ReaderSetup":
        """``reader`` with the settings of its ``calibration.json``; ``threshold``, ``narrow_to`` and ``focus``
        override them. ``narrower``: the reader a cascade narrows with (when the calibration names a cascade, or
        ``narrow_to`` > 0).

        Raises:
            InvalidInput: the calibration was fitted on something this version does not compute.
        """
        calibration = load_calibration(reader.path)
        if not calibration:
            logger.info("reader at %s is uncalibrated (no %s): abstaining below %.2f",
                        reader.path, CALIBRATION_NAME, FALLBACK_THRESHOLD)
        calibrator = Calibrator.from_dict(calibration["calibrator"]) if "calibrator" in calibration else None
        _check_fitted_here(calibration, calibrator, calibration_file(reader.path))
        cascade = calibration.get("cascade") or {}
        return cls(
            reader=reader,
            threshold=_check_threshold(default_threshold(calibration) if threshold is None else threshold),
            calibrator=calibrator,
            # A calibrator fitted on every candidate (not only the reader's best) also chooses the answer.
            picks=bool(calibration.get("picks")) and calibrator is not None,
            bands=tuple(calibration.get("bands", ())),
            top_k=int(calibration.get("top_k", DEFAULT_TOP_K)),
            relevance_floor=float(calibration.get("relevance_floor", RELEVANCE_FLOOR)),
            narrow_to=narrow_to if narrow_to is not None else int(cascade.get("passages", 0)),
            narrower=narrower,
            focus=focus if focus is not None else int(cascade.get("focus", 0)),
            reliability=tuple(calibration.get("reliability", ())),
        )


class QA:
    """Retriever and readers together; one instance serves many questions (and threads).

    Args:
        retriever: a loaded :class:`~qa.retrieval.retriever.Retriever`.
        reader: a :class:`~qa.reading.reader.Reader`: the one that reads every question unless told otherwise.
        threshold: answer only when the answer's confidence is at least this; ``None`` reads each reader's
            calibrated default (``calibration.json`` in its folder).
        others: more readers a question may ask for by name (``ask(..., reader="fast")``); the first of them
            also narrows the passages when the main reader's calibration names a cascade.
        busy: when more than this many questions are being answered at once or wait for their turn, a
            question that names no reader is read by the first of ``others`` (the answer says which reader
            read it); 0: never.
        waiting: how many questions wait for their turn outside this pipeline (e.g. in a server's queue);
            ``None``: none do.
        cascade: the first of ``others`` reads the retrieved passages first and the reader only the
            ``cascade`` passages holding its best candidates; 0: the reader reads them all; ``None``: as
            the reader's calibration says (``"cascade"``), which is what its calibrator was fitted on.
        focus: in a cascade, the reader reads only this many characters around the first reader's candidates
            in each passage; 0: whole passages; ``None``: as the reader's calibration says.
    """

    def __init__(self, retriever: Retriever, reader: Reader, threshold: float | None = None,
                 others: Sequence[Reader] = (), busy: int = 0, cascade: int | None = None,
                 waiting: Callable[[], int] | None = None, focus: int | None = None):
        self.retriever = retriever
        narrower = others[0] if others else None
        main = ReaderSetup.of(reader, threshold, narrower, cascade, focus)
        self.setups = {main.name: main, **{r.name: ReaderSetup.of(r, threshold) for r in others}}
        self.default = main.name
        self.busy = busy
        self.waiting = waiting
        self._fallback = others[0].name if others and busy > 0 else None
        self._in_flight = 0
        self._given = (threshold, cascade, focus)
        # Sentence offsets of recently cited documents (least recently used dropped first); the lock
        # guards only this dict and the count of questions in flight, never the splitting.
        self._sentences: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self.followups = FollowUpSearch(retriever)

    # The default reader's settings, as the app and the CLI read them.
    reader = property(lambda self: self.setups[self.default].reader)
    reader_name = property(lambda self: self.default)
    threshold = property(lambda self: self.setups[self.default].threshold)
    calibrator = property(lambda self: self.setups[self.default].calibrator)
    picks = property(lambda self: self.setups[self.default].picks)
    bands = property(lambda self: self.setups[self.default].bands)
    top_k = property(lambda self: self.setups[self.default].top_k)
    relevance_floor = property(lambda self: self.setups[self.default].relevance_floor)

    @property
    def cascade(self) -> dict:
        """The default reader's cascade, ``{"reader": name, "passages": n}`` (and ``"focus": chars`` when it reads
        only around the first reader's candidates), or ``{}`` when it reads every passage."""
        setup = self.setups[self.default]
        if setup.narrower is None or not setup.narrow_to:
            return {}
        return {"reader": str(getattr(setup.narrower, "name", "")), "passages": setup.narrow_to,
                **({"focus": setup.focus} if setup.focus else {})}

    @property
    def reader_names(self) -> tuple[str, ...]:
        """The readers a question may name, the default first."""
        return tuple(self.setups)

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "embeddings",
        reader: str | Path | None = None,
        threshold: float | None = None,
        encoder: Encoder | None = None,
        reader_runtime: str | None = None,
        fallback: str | Path | None = None,
        busy: int = 0,
        cascade: int | None = None,
        focus: int | None = None,
    ) -> "QA":
        """Load the index at ``index_dir`` and a reader: ``"accurate"`` or ``"fast"`` (the readers shipped in
        the package), a folder that ``qa train-reader`` wrote, or ``None`` for the default
        (:data:`qa.reading.names.DEFAULT_READER`), on its default runtime.

        Args:
            fallback: a second reader (name or folder) that questions may ask for, that reads when more than
                ``busy`` questions are being answered at once, and that narrows the passages when the
                reader's calibration names a cascade. ``None``: the ``fast`` reader when there is a cascade,
                else none.
            cascade: passages the reader reads after the fallback narrowed them (see :class:`QA`); ``None``:
                as the reader's calibration says.
            focus: characters the reader reads around the fallback's candidates in a cascade (see :class:`QA`).
        """
        main = Reader.load(reader, runtime=reader_runtime)  # first: a wrong name fails before the index loads
        narrows = cascade if cascade is not None else int((load_calibration(main.path).get("cascade") or {})
                                                          .get("passages", 0))
        if fallback is None and narrows:
            fallback = (load_calibration(main.path).get("cascade") or {}).get("reader", "fast")
        others = [Reader.load(fallback, runtime=reader_runtime)] if fallback is not None else []
        others = [r for r in others if r.path.resolve() != main.path.resolve()]
        if narrows and not others:
            raise InvalidInput("A cascade needs a second reader to narrow the passages: the reader can't narrow for itself.")
        return cls(Retriever.load(index_dir, encoder=encoder), main, threshold, others, busy, cascade, focus=focus)

    def with_retriever(self, retriever: Retriever) -> "QA":
        """The same readers and settings over another retriever (a rebuilt index)."""
        main, others = self.setups[self.default].reader, [s.reader for n, s in self.setups.items() if n != self.default]
        threshold, cascade, focus = self._given
        return QA(retriever, main, threshold, others, self.busy, cascade, self.waiting, focus)

    @property
    def documents(self) -> dict[str, Document]:
        return self.retriever.documents

    def ask(self, question: str, top_k: int | None = None, mode: str = DEFAULT_MODE, threshold: float | None = None,
            history: Sequence[Any] | None = None, doc_ids: Sequence[str] | None = None,
            reader: str | None = None) -> Answer:
        """Answer ``question`` from the ``top_k`` passages retrieved with ``mode``.

        Args:
            top_k: passages to read; ``None``: the number the reader's calibration was fitted on
                (``calibration.json``, ``"top_k"``).
            threshold: answer only at this confidence or more; ``None``: the reader's calibrated threshold.
            history: the conversation so far, oldest first: earlier questions (text), or earlier
                :class:`Answer` values or ``/ask`` objects (their citations tell which document the
                previous answer came from). A follow-up ("And when was it founded?") is then searched
                with the earlier turns' key terms and the previous answer's document favoured
                (:mod:`qa.retrieval.followup`); the reader reads the question as asked, and
                ``Answer.searched`` says what was searched. ``None`` or ``[]``: the question alone.
            doc_ids: search only these documents (ids); ``None`` searches them all. The question's
                relevance is then its cosine to the nearest passage of these documents.
            reader: which reader reads (one of :attr:`reader_names`); ``None``: the default, or the
                fallback while the server is busy (``Answer.reader`` says which read).

        Raises:
            InvalidInput: the question is not text, is empty or holds characters that are not text;
                bad ``top_k``, ``mode``, ``threshold``, ``history`` or ``reader``; an unknown or empty ``doc_ids``.
        """
        return self._ask(question, top_k, mode, threshold, history, doc_ids, reader, None).answer

    def ask_scored(self, question: str, top_k: int | None = None, mode: str = DEFAULT_MODE,
                   threshold: float | None = None, history: Sequence[Any] | None = None,
                   doc_ids: Sequence[str] | None = None, reader: str | None = None) -> Scored:
        """:meth:`ask`, with every feature of every candidate (what an evaluation run records)."""
        return self._ask(question, top_k, mode, threshold, history, doc_ids, reader, FEATURES)

    def _ask(self, question: str, top_k: int | None, mode: str, threshold: float | None,
             history: Sequence[Any] | None, doc_ids: Sequence[str] | None, reader: str | None,
             names: Sequence[str] | None) -> Scored:
        question = check_question(question)
        if threshold is not None:
            _check_threshold(threshold)
        setup = self._setup(reader)
        with self._lock:
            self._in_flight += 1
            busy = self._fallback is not None and reader is None and \
                self._in_flight + (self.waiting() if self.waiting else 0) > self.busy
        try:
            if busy:
                setup = self.setups[self._fallback]
            t0 = time.perf_counter()
            if doc_ids is not None:
                doc_ids = list(doc_ids) if isinstance(doc_ids, (list, tuple)) else doc_ids  # the retriever checks it
            top_k = setup.top_k if top_k is None else top_k
            found = self.followups.search(question, history, top_k=top_k, mode=mode, doc_ids=doc_ids)
            retrieve_ms = (time.perf_counter() - t0) * 1000
            scored = self._answer(setup, question, found.hits, threshold, found.relevance, found.searched, names)
        finally:
            with self._lock:
                self._in_flight -= 1
        answer = scored.answer
        answer.timings.update(retrieve_ms=retrieve_ms, total_ms=retrieve_ms + answer.timings["read_ms"])
        if found.searched:
            answer = dataclasses.replace(answer, searched=found.searched)
        return Scored(answer, scored.features)

    def _setup(self, reader: str | None) -> ReaderSetup:
        if reader is None:
            return self.setups[self.default]
        if reader not in self.setups:
            raise InvalidInput(f"Unknown reader {reader!r}: use one of {', '.join(self.setups)}.")
        return self.setups[reader]

    def answer_from_hits(
        self, question: str, hits: Sequence[Hit], threshold: float | None = None, relevance: float | None = None,
        searched: str | None = None, reader: str | None = None,
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
            reader: which reader reads (one of :attr:`reader_names`); ``None``: the default.
        """
        return self._answer(self._setup(reader), question, hits, threshold, relevance, searched, None).answer

    def _answer(self, setup: ReaderSetup, question: str, hits: Sequence[Hit], threshold: float | None,
                relevance: float | None, searched: str | None, names: Sequence[str] | None) -> Scored:
        """Read ``hits`` and answer or abstain; ``names``: the features to compute for every candidate
        (``None``: only those the calibrator weighs)."""
        threshold = setup.threshold if threshold is None else _check_threshold(threshold)
        t0 = time.perf_counter()
        passages = [hit.passage for hit in hits]
        if names is None:
            names = setup.calibrator.features if setup.calibrator is not None else ()
        seconds: list[Span] = []  # in a cascade, the narrowing reader's candidates: a second opinion on each answer
        if setup.narrower is not None and setup.narrow_to and passages:
            narrows = len(passages) > setup.narrow_to or setup.focus
            if narrows or "second_opinion" in names:  # the first reader reads only when its result is used
                first = setup.narrower.read(question, passages)
                seconds = first.spans
                if narrows:
                    passages = narrowed(first, passages, setup.narrow_to, setup.focus)
        result = setup.reader.read(question, passages)
        spans = list(result.spans)
        # Each candidate's features; its evidence is the sentence around it, cut only for the one feature that
        # reads it. Citations are made for the answer alone.
        rows = [candidate_features(searched or question, span, spans, hits, relevance,
                                   self._evidence(span) if "overlap" in names else "", names, seconds)
                for span in spans]
        if setup.calibrator is not None:
            scores = [setup.calibrator.probability(row) for row in rows]
        else:
            scale = 1.0 if relevance is None else min(1.0, max(0.0, relevance) / setup.relevance_floor)
            scores = [span.score * scale for span in spans]
        if setup.picks and spans:  # most likely right first (a stable sort: ties keep the reader's order)
            order = sorted(range(len(spans)), key=lambda i: -scores[i])
            spans, rows, scores = ([xs[i] for i in order] for xs in (spans, rows, scores))
        score = scores[0] if spans else 0.0
        citations = self._citations(spans[0]) if spans else ()
        read_ms = (time.perf_counter() - t0) * 1000
        common = dict(question=question, score=score, hits=tuple(hits), alternatives=tuple(spans),
                      timings={"read_ms": read_ms, "total_ms": read_ms}, reader=setup.name)
        if not spans or score < threshold:
            return Scored(Answer(text=None, abstained=True, evidence="", **common), tuple(rows))
        return Scored(Answer(text=spans[0].text, abstained=False, evidence=citations[0].quote, citations=citations,
                             **common), tuple(rows))

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
            "reader": answer.reader,
            "evidence": answer.evidence,
            **({"searched": answer.searched} if answer.searched else {}),
            "citations": [c.to_dict() for c in answer.citations],
            "passages": [h.to_dict(self.documents[h.passage.doc_id].title) for h in answer.hits],
        }
