"""What is known about a candidate answer, as numbers a calibrator turns into P(the answer is right).

One row per candidate: how the reader scored it against its rivals, how the retriever ranked its
passage, and two checks of fit with the question that need no model: whether the answer's shape suits
the question word (a year for "when", a number for "how many", a name for "who": regular expressions,
where an entity tagger would add a second model to load for the same few categories), and how many of
the question's content words the evidence sentence shares. The pipeline computes only the features
its calibrator weighs.

Example:
    >>> row = candidate_features("When did it open?", best, spans, hits, 0.6, "It opened in 1932.")
    >>> row["type_fit"]
    1.0
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

from qa.text import content_words
from qa.types import Hit, Span

# What a candidate's chance of being right is learnt from: nothing that describes the fit sets rather than
# the answer (the answer's length: the fit sets' answers are short; the reader's no-answer score: it was
# trained on their unanswerable questions), which calibrates worse on the held-out runs of
# `qa eval fit-calibrator --train ... --test ...`.
FEATURES = (
    "span_score",  # sigmoid(0.1 x (start + end logit)) of the candidate
    "margin",  # its span score minus the best other answer's
    "relevance",  # cosine of the question with its nearest passage
    "passage_rank",  # 1 / fused rank of the answer's passage
    "dense_rank",  # 1 / its dense rank (0 when dense did not find it)
    "keyword_rank",  # 1 / its BM25 rank (0 when BM25 did not find it)
    "agreement",  # log(1 + passages that give the same answer)
    "type_fit",  # +1 the answer's shape suits the question word, -1 it can't, 0 no telling
    "overlap",  # share of the question's content words found in the evidence sentence
    "second_opinion",  # in a cascade, the narrowing reader's span score for the same answer (0 if it had none)
)

_MONTHS = r"jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?|nov(ember)?|dec(ember)?"
_DATE = re.compile(rf"\b(1\d{{3}}|20\d{{2}}|\d{{1,2}}(st|nd|rd|th)?|{_MONTHS}|century|centuries|decade|\d{{2,4}}s|"
                   r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|spring|summer|autumn|fall|winter|"
                   r"today|yesterday|tomorrow|year|years|weeks?|days?|months?|hours?|bc|ad|ce)\b", re.I)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                     r"fifty|hundred|thousand|million|billion|dozen|half|several|many|few|no)\b", re.I)
_QUESTION_TYPES = (
    ("date", re.compile(r"^\s*(when\b|(in |by |since |until )?(what|which) (year|date|month|day|time|century|decade|"
                        r"period|era)\b)", re.I)),
    ("number", re.compile(r"\bhow (many|much|long|far|old|big|large|often|tall|high|fast)\b|"
                          r"\b(what|which) (number|percentage|percent|proportion|share|amount)\b", re.I)),
    ("person", re.compile(r"^\s*(who|whom|whose)\b|\bby whom\b", re.I)),
)


def question_type(question: str) -> str | None:
    """``"date"``, ``"number"``, ``"person"`` or ``None`` (no expectation) from the question's wording."""
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return name
    return None


def type_fit(question: str, answer: str) -> float:
    """+1 when the answer has the shape the question asks for, -1 when it can't be that, 0 when unsure.

    A date question wants a year, month, day or period word; a number question a digit or number
    word; a "who" question anything but a bare number or date (names are often lower-cased in the
    wild, so a missing capital proves nothing).
    """
    kind = question_type(question)
    if kind == "date":
        return 1.0 if _DATE.search(answer) else -1.0
    if kind == "number":
        return 1.0 if _NUMBER.search(answer) else -1.0
    if kind == "person":
        if re.fullmatch(r"[\d\s.,%/-]+", answer) or re.fullmatch(rf"(\s|{_DATE.pattern})+", answer, re.I):
            return -1.0
        return 1.0 if re.search(r"\b[A-Z][a-z]+", answer) else 0.0
    return 0.0


def word_overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that appear in ``sentence`` (0 when it has none)."""
    asked = content_words(question)
    return len(asked & content_words(sentence)) / len(asked) if asked else 0.0


def _places(span: Span) -> set[tuple[str, int, int]]:
    """Every (doc_id, start, end) where the candidate's text was found."""
    return {o[0:3] for o in span.occurrences} | {(span.doc_id, span.start, span.end)}


def _overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    """Two places share a document and at least one character."""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _inverse(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def candidate_features(
    question: str,
    best: Span,
    spans: Sequence[Span],
    hits: Sequence[Hit],
    relevance: float | None,
    evidence: str,
    names: Iterable[str] = FEATURES,
    seconds: Sequence[Span] = (),
) -> dict[str, float]:
    """The features ``names`` (of :data:`FEATURES`) of the candidate ``best`` among ``spans`` (best first).

    Args:
        question: the question as asked, or for a follow-up what was searched (the question with the
            conversation's terms).
        best: the candidate being scored.
        spans: every candidate of the question, best first (``best`` among them).
        hits: the passages the reader was given, with their ranks.
        relevance: cosine with the nearest passage (``None``: treated as on-topic, 1.0).
        evidence: the sentence around the answer.
        names: the features wanted (a calibrator's); only these are computed.
        seconds: in a cascade, the candidates of the reader that narrowed the passages (empty otherwise).

    Raises:
        ValueError: a name that is not one of :data:`FEATURES`.
    """
    hit = next((h for h in hits if h.passage.id == best.passage_id), None)

    places = {o[0:3] for o in best.occurrences} or {(best.doc_id, best.start, best.end)}

    def agreement() -> float:
        passages = {h.passage.id for h in hits for (doc, s, e) in places
                    if h.passage.doc_id == doc and h.passage.start <= s and e <= h.passage.end}
        return math.log1p(max(1, len(passages)))

    def margin() -> float:
        rivals = [s.score for s in spans if s.text != best.text]
        return best.score - (max(rivals) if rivals else 0.0)

    def second_opinion() -> float:
        return max((s.score for s in seconds if any(_overlaps(place, p) for p in _places(s) for place in places)),
                   default=0.0)

    computed = {
        "span_score": lambda: best.score,
        "margin": margin,
        "relevance": lambda: 1.0 if relevance is None else relevance,
        "passage_rank": lambda: _inverse(hit.rank if hit else None),
        "dense_rank": lambda: _inverse(hit.dense_rank if hit else None),
        "keyword_rank": lambda: _inverse(hit.keyword_rank if hit else None),
        "agreement": agreement,
        "type_fit": lambda: type_fit(question, best.text),
        "overlap": lambda: word_overlap(question, evidence),
        "second_opinion": second_opinion,
    }
    unknown = [name for name in names if name not in computed]
    if unknown:
        raise ValueError(f"unknown candidate feature(s) {', '.join(map(repr, unknown))}: this version computes "
                         f"{', '.join(FEATURES)}")
    return {name: computed[name]() for name in names}
