"""Selective-QA measures against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import pytest

from qa.evaluation.selective import (
    aurc,
    coverage_at_precision,
    expected_calibration_error,
    reliability,
    risk_coverage,
    summary,
)

# Five questions, most confident first: right, right, wrong, right, wrong.
SCORES = [0.95, 0.85, 0.65, 0.45, 0.15]
RIGHT = [True, True, False, True, False]


def test_risk_coverage_by_hand():
    # Answer the top 1: 1/1 right; top 2: 2/2; top 3: 2/3; top 4: 3/4; all 5: 3/5.
    curve = risk_coverage(SCORES, RIGHT)
    assert [p.answered for p in curve] == [1, 2, 3, 4, 5]
    assert [p.coverage for p in curve] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [p.precision for p in curve] == pytest.approx([1.0, 1.0, 2 / 3, 0.75, 0.6])
    assert [p.threshold for p in curve] == SCORES


def test_ties_are_answered_together():
    # Scores 0.9, 0.5, 0.5, 0.1: a threshold answers both 0.5s or neither, so there are 3 points, not 4.
    curve = risk_coverage([0.5, 0.9, 0.1, 0.5], [False, True, False, True])
    assert [(p.answered, p.precision) for p in curve] == [(1, 1.0), (3, pytest.approx(2 / 3)), (4, 0.5)]


def test_aurc_by_hand():
    # Risks at k = 1..5: 0, 0, 1/3, 1/4, 2/5; mean = (0 + 0 + 0.3333 + 0.25 + 0.4) / 5 = 0.196667.
    assert aurc(SCORES, RIGHT) == pytest.approx((1 / 3 + 1 / 4 + 2 / 5) / 5)
    # A perfect order (right answers first) has only the unavoidable risk: 0, 0, 0, 1/4, 2/5 -> 0.13.
    assert aurc([0.9, 0.8, 0.7, 0.2, 0.1], [True, True, True, False, False]) == pytest.approx((1 / 4 + 2 / 5) / 5)
    assert aurc([], []) is None


def test_aurc_with_ties_uses_the_group_risk():
    # Groups: {0.9: right} then {0.5, 0.5: one right}: risks 0 at k=1, then 1/3 for k=2 and k=3.
    assert aurc([0.9, 0.5, 0.5], [True, True, False]) == pytest.approx((0 + 1 / 3 + 1 / 3) / 3)


def test_coverage_at_precision_by_hand():
    # Precision >= 0.9 holds up to the top 2 (coverage 0.4, threshold 0.85); >= 0.7 up to the top 4 (0.75).
    assert coverage_at_precision(SCORES, RIGHT, 0.9) == (pytest.approx(0.4), 0.85)
    assert coverage_at_precision(SCORES, RIGHT, 0.7) == (pytest.approx(0.8), 0.45)
    # Nothing reaches it when the most confident answer is wrong.
    assert coverage_at_precision([0.9, 0.1], [False, True], 0.9) == (0.0, None)


def test_ece_by_hand():
    # Bins of width 0.1: 0.95 (right) -> [0.9, 1.0]: |1 - 0.95| = 0.05; 0.85 (right) -> |1 - 0.85| = 0.15;
    # 0.65 (wrong) -> 0.65; 0.45 (right) -> 0.55; 0.15 (wrong) -> 0.15. ECE = (0.05+0.15+0.65+0.55+0.15) / 5 = 0.31.
    assert expected_calibration_error(SCORES, RIGHT) == pytest.approx(0.31)
    # Two answers in one bin: confidences 0.62 and 0.68 (mean 0.65), one right (accuracy 0.5): gap 0.15.
    assert expected_calibration_error([0.62, 0.68], [True, False]) == pytest.approx(0.15)
    # A score of exactly 1.0 falls in the last bin, not past it.
    bins = reliability([1.0, 0.0], [True, False])
    assert [(b.low, b.high, b.count) for b in bins] == [(0.0, pytest.approx(0.1), 1), (pytest.approx(0.9), 1.0, 1)]
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one length"):
        risk_coverage([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="NaN"):
        aurc([float("nan")], [True])


def test_summary_keys():
    out = summary(SCORES, RIGHT)
    assert out["coverage@90"] == pytest.approx(0.4) and out["threshold@95"] == 0.85
    assert out["aurc"] == pytest.approx(aurc(SCORES, RIGHT)) and out["questions"] == 5
