"""What is known about a candidate answer, as numbers a calibrator turns into P(the answer is right).

One row per question: the best candidate span, how the reader scored it and its rivals, how the
retriever ranked its passage, and two checks of fit with the question that need no model: whether
the answer's shape suits the question word (a year for "when", a number for "how many", a name for
"who": regular expressions, microseconds, where a spaCy entity tagger would add a second model load
and ~5 ms a question for the same few categories), and how many of the question's content words the
evidence sentence shares.

Example:
    >>> row = candidate_features("When did it open?", best, spans, 0.1, hits, 0.6, "It opened in 1932.")
    >>> row["type_fit"]
    1.0
"""

from __future__ import annotations

import math
import re
from typing import Sequence

from qa.types import Hit, Span

FEATURES = (
    "span_score",  # sigmoid(0.1 x (start + end logit)) of the best span
    "span_logit",  # start + end logit, / 10
    "window_prob",  # the span's probability under its window's own softmax
    "no_answer",  # the reader's no-answer score (lowest over the windows)
    "margin",  # best span score minus the next different answer's
    "relevance",  # cosine of the question with its nearest passage
    "passage_rank",  # 1 / fused rank of the answer's passage
    "dense_rank",  # 1 / its dense rank (0 when dense did not find it)
    "keyword_rank",  # 1 / its BM25 rank (0 when BM25 did not find it)
    "agreement",  # log(1 + passages that give the same answer)
    "answer_words",  # log(1 + words in the answer)
    "type_fit",  # +1 the answer's shape suits the question word, -1 it can't, 0 no telling
    "overlap",  # share of the question's content words found in the evidence sentence
    "echo",  # share of the answer's content words that the question already holds
    "nearby",  # share of the question's content words within NEARBY_CHARS of the answer in its passage
)
NEARBY_CHARS = 100  # on each side of the answer: about 15 words

_STOP = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its of on or that the their "
    "there these this those to was were what when where which who whom whose why will with would you".split()
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
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


def content_words(text: str) -> set[str]:
    return {w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP}


def word_overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that appear in ``sentence`` (0 when it has none)."""
    asked = content_words(question)
    return len(asked & content_words(sentence)) / len(asked) if asked else 0.0


def echo(question: str, answer: str) -> float:
    """Share of the answer's content words that are in the question: an answer that repeats the
    question ("Which river ...?" -> "the river") rarely answers it (0 when the answer has none)."""
    said = content_words(answer)
    return len(said & content_words(question)) / len(said) if said else 0.0


def nearby(question: str, best: Span, hits: Sequence[Hit]) -> float:
    """Share of the question's content words within :data:`NEARBY_CHARS` of the answer in the passage
    it was read from (the answer itself left out): the words a reader matches sit close to the right
    answer, as in SQuAD's sliding-window baseline (Rajpurkar et al. 2016)."""
    hit = next((h for h in hits if h.passage.id == best.passage_id), None)
    asked = content_words(question)
    if hit is None or not asked:
        return 0.0
    start, end = best.start - hit.passage.start, best.end - hit.passage.start
    text = hit.passage.text
    around = text[max(0, start - NEARBY_CHARS):max(0, start)] + " " + text[end:end + NEARBY_CHARS]
    return len(asked & content_words(around)) / len(asked)


def _inverse(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def candidate_features(
    question: str,
    best: Span,
    spans: Sequence[Span],
    no_answer: float,
    hits: Sequence[Hit],
    relevance: float | None,
    evidence: str,
) -> dict[str, float]:
    """The :data:`FEATURES` of the best candidate ``best`` among ``spans`` (best first).

    Args:
        question: the question as asked, or for a follow-up what was searched (the question with the
            conversation's terms).
        best: the candidate being scored.
        spans: every candidate of the question, best first (``best`` among them).
        no_answer: the reader's no-answer score.
        hits: the passages the reader was given, with their ranks.
        relevance: cosine with the nearest passage (``None``: treated as on-topic, 1.0).
        evidence: the sentence around the answer.
    """
    hit = next((h for h in hits if h.passage.id == best.passage_id), None)
    rivals = [s.score for s in spans if s.text != best.text]
    places = {o[0:3] for o in best.occurrences} or {(best.doc_id, best.start, best.end)}
    passages = {h.passage.id for h in hits for (doc, s, e) in places
                if h.passage.doc_id == doc and h.passage.start <= s and e <= h.passage.end}
    return {
        "span_score": best.score,
        "span_logit": best.logit / 10.0,
        "window_prob": best.window_prob,
        "no_answer": no_answer,
        "margin": best.score - (max(rivals) if rivals else 0.0),
        "relevance": 1.0 if relevance is None else relevance,
        "passage_rank": _inverse(hit.rank if hit else None),
        "dense_rank": _inverse(hit.dense_rank if hit else None),
        "keyword_rank": _inverse(hit.keyword_rank if hit else None),
        "agreement": math.log1p(max(1, len(passages))),
        "answer_words": math.log1p(len(best.text.split())),
        "type_fit": type_fit(question, best.text),
        "overlap": word_overlap(question, evidence),
        "echo": echo(question, best.text),
        "nearby": nearby(question, best, hits),
    }
