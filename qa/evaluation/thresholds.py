"""The no-answer threshold: each question's best span as a :class:`Candidate`, the sweep of overall
F1 against the threshold, and the best threshold as SQuAD 2.0's official ``find_best_thresh`` picks it.

Example:
    >>> best_threshold([Candidate(0.9, 1.0, 0.0), Candidate(0.8, 0.0, 1.0)])
    (0.9, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from qa.evaluation.common import Record
from qa.evaluation.metrics import best_over_golds, f1_score


@dataclass(frozen=True)
class Candidate:
    """A question's best span as the threshold sees it.

    Attributes:
        score: the span's confidence; the system answers when ``score >= threshold``.
        if_answered: the question's F1 when the span is given (0 or 1 for unanswerable questions).
        if_abstained: its F1 when the system abstains (1 for unanswerable questions, else 0).
    """

    score: float
    if_answered: float
    if_abstained: float


def candidate_of(golds: Sequence[str], text: str, score: float) -> Candidate:
    """The :class:`Candidate` of a best span ``text`` (empty when the reader found none)."""
    return Candidate(score, best_over_golds(f1_score, text, golds), best_over_golds(f1_score, "", golds))


def candidates_of(records: Sequence[Record]) -> list[Candidate]:
    """The threshold-sweep candidate saved in each record."""
    return [Candidate(**r["candidate"]["sweep"]) for r in records]


def threshold_sweep(candidates: Sequence[Candidate]) -> list[tuple[float, float]]:
    """Mean F1 over all questions against the threshold, highest threshold first.

    The first point abstains on everything; then each distinct score, taken as the threshold, adds
    the questions at that score to those answered. This is the accumulation of SQuAD 2.0's official
    ``find_best_thresh`` (sort by score, add each question's gain), except that equal scores are
    added together, since one threshold cannot separate them.
    """
    if not candidates:
        return []
    n = len(candidates)
    ordered = sorted(candidates, key=lambda c: -c.score)
    total = sum(c.if_abstained for c in candidates)
    points = [(min(1.0, math.nextafter(ordered[0].score, math.inf)), total / n)]
    for i, c in enumerate(ordered):
        total += c.if_answered - c.if_abstained
        if i + 1 == n or ordered[i + 1].score != c.score:
            points.append((c.score, total / n))
    return points


def best_threshold(candidates: Sequence[Candidate]) -> tuple[float, float]:
    """``(threshold, mean F1)`` of the sweep's best point; the highest threshold wins a tie.

    Raises:
        ValueError: no candidates.
    """
    points = threshold_sweep(candidates)
    if not points:
        raise ValueError("Cannot choose a threshold without questions.")
    best = points[0]
    for point in points[1:]:
        if point[1] > best[1]:
            best = point
    return best


def calibration_threshold(candidates: Sequence[Candidate]) -> tuple[float, float]:
    """The best threshold, moved halfway between the lowest score it answers and the highest it refuses.

    :func:`best_threshold` returns a question's exact score; a threshold saved with fewer digits could
    round above it and lose that question. The midpoint answers the same questions with a margin on
    both sides (bounds 1 and 0 when it answers none or all).
    """
    threshold, f1 = best_threshold(candidates)
    answered = [c.score for c in candidates if c.score >= threshold]
    refused = [c.score for c in candidates if c.score < threshold]
    return ((min(answered) if answered else 1.0) + (max(refused) if refused else 0.0)) / 2, f1


def f1_at_threshold(candidates: Sequence[Candidate], threshold: float) -> float:
    """Mean F1 over all questions when answering exactly those with ``score >= threshold``."""
    return sum(c.if_answered if c.score >= threshold else c.if_abstained for c in candidates) / len(candidates)
