"""Selective question answering: how precise the answers are at each share of questions answered.

A system that may refuse is measured by its risk-coverage curve (Kamath, Jia & Liang 2020,
"Selective Question Answering under Domain Shift"; Geifman & El-Yaniv 2017): order the questions by
the confidence of their best answer, answer the most confident first, and at each coverage (share
answered) report the precision of what was answered. A threshold can't separate questions of equal
confidence, so tied questions are answered or refused together.

A question counts as right when answered with an answer of F1 >= 0.5 against its gold answers;
answering an unanswerable question is wrong. Refusing is never counted in the precision here: it is
what coverage gives up.

Example:
    >>> curve = risk_coverage([0.9, 0.8, 0.3], [True, False, True])
    >>> [(round(p.coverage, 2), round(p.precision, 2)) for p in curve]
    [(0.33, 1.0), (0.67, 0.5), (1.0, 0.67)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PRECISION_TARGETS = (0.90, 0.95)
ECE_BINS = 10


@dataclass(frozen=True)
class CurvePoint:
    """Answer every question whose confidence is at least ``threshold``."""

    threshold: float
    coverage: float  # share of questions answered
    precision: float  # share of answered questions that are right
    answered: int


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram: answers whose confidence falls in ``[low, high)``."""

    low: float
    high: float
    count: int
    confidence: float  # mean confidence of the answers in the bin
    accuracy: float  # share of them that are right


def _check(scores: Sequence[float], right: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(right, dtype=bool)
    if s.shape != r.shape or s.ndim != 1:
        raise ValueError(f"scores and right must be two lists of one length, got {s.shape} and {r.shape}.")
    if np.isnan(s).any():
        raise ValueError("scores must be numbers, not NaN.")
    return s, r


def risk_coverage(scores: Sequence[float], right: Sequence[bool]) -> list[CurvePoint]:
    """The curve, one point per distinct confidence, from the most confident answers to all of them.

    Args:
        scores: the confidence of each question's best answer.
        right: whether that answer is right (F1 >= 0.5; ``False`` for any answer to an unanswerable question).
    """
    s, r = _check(scores, right)
    n = len(s)
    if n == 0:
        return []
    order = np.argsort(-s, kind="stable")
    s, r = s[order], r[order]
    cum_right = np.cumsum(r)
    # The last index of each group of equal scores: a threshold answers a whole group or none of it.
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    return [CurvePoint(float(s[e]), (e + 1) / n, float(cum_right[e]) / (e + 1), int(e + 1)) for e in ends]


def aurc(scores: Sequence[float], right: Sequence[bool]) -> float | None:
    """Area under the risk-coverage curve: the mean, over answering the top 1, 2, ..., n questions, of
    the risk (1 - precision) of what was answered; tied questions share their group's risk. 0 is perfect;
    a random order gives the error rate."""
    s, r = _check(scores, right)
    n = len(s)
    if n == 0:
        return None
    total, prev = 0.0, 0
    for point in risk_coverage(s, r):
        # Every answered count k inside a tie group is scored with the group's (reachable) risk.
        total += (point.answered - prev) * (1.0 - point.precision)
        prev = point.answered
    return total / n


def coverage_at_precision(scores: Sequence[float], right: Sequence[bool], target: float) -> tuple[float, float | None]:
    """The largest coverage whose answered questions are at least ``target`` precise, and its threshold
    (``(0.0, None)`` when even the most confident group misses the target)."""
    best = (0.0, None)
    for point in risk_coverage(scores, right):
        if point.precision >= target - 1e-12:
            best = (point.coverage, point.threshold)
    return best


def reliability(scores: Sequence[float], right: Sequence[bool], bins: int = ECE_BINS) -> list[Bin]:
    """Equal-width confidence bins over [0, 1] (the last one closed), empty bins left out."""
    s, r = _check(scores, right)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}.")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, np.clip(s, 0.0, 1.0), side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append(Bin(float(edges[b]), float(edges[b + 1]), int(mask.sum()), float(s[mask].mean()),
                           float(r[mask].mean())))
    return out


def expected_calibration_error(scores: Sequence[float], right: Sequence[bool], bins: int = ECE_BINS) -> float | None:
    """ECE: the gap between mean confidence and accuracy in each bin, weighted by the bin's share."""
    s, _ = _check(scores, right)
    if len(s) == 0:
        return None
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in reliability(scores, right, bins)) / len(s))


def summary(scores: Sequence[float], right: Sequence[bool], targets: Sequence[float] = PRECISION_TARGETS) -> dict:
    """AURC, ECE and coverage at each target precision, as ``qa eval`` reports them."""
    out: dict = {"questions": len(scores), "aurc": aurc(scores, right), "ece": expected_calibration_error(scores, right)}
    for target in targets:
        coverage, threshold = coverage_at_precision(scores, right, target)
        out[f"coverage@{round(target * 100)}"] = coverage
        out[f"threshold@{round(target * 100)}"] = threshold
    return out
