"""The scoring half of benchmarks/haystack_compare.py, on hand-made rows (Haystack itself is never imported)."""

import sys

import pytest

from benchmarks.haystack_compare import compare, haystack_said, matched_threshold, measure


def test_the_scoring_half_does_not_import_haystack():
    assert "haystack" not in sys.modules


def test_matched_threshold_refuses_the_asked_number():
    scores = [0.9, 0.2, 0.5, 0.7]
    # Sorted 0.2, 0.5, 0.7, 0.9: "refuse when score < 0.7" refuses 0.2 and 0.5.
    assert matched_threshold(scores, 2) == 0.7
    # Nothing lies below the lowest score.
    assert matched_threshold(scores, 0) == 0.2
    # All four refused: the threshold lies just above the highest.
    t = matched_threshold(scores, 4)
    assert 0.9 < t < 0.9 + 1e-12
    assert matched_threshold([], 0) == 0.0


def test_matched_threshold_with_ties_takes_the_nearest_count():
    # Candidates 0.5 (refuses 0), 0.8 (refuses 3), above 0.8 (refuses 4): 3 is nearest to 2.
    assert matched_threshold([0.5, 0.5, 0.5, 0.8], 2) == 0.8
    # 0.5 refuses 1 and 0.8 refuses 3, both 1 away from 2: the lower threshold wins.
    assert matched_threshold([0.2, 0.5, 0.5, 0.8], 2) == 0.5


def test_matched_threshold_rejects_an_impossible_count():
    with pytest.raises(ValueError, match="between 0 and 2"):
        matched_threshold([0.1, 0.2], 3)


def test_haystack_said_as_shipped_and_at_a_threshold():
    row = {"answers": [{"text": "a", "score": 0.4}], "no_answer_score": 0.6}
    assert haystack_said(row, None) is None  # the no-answer (0.6) outscores the span (0.4)
    assert haystack_said(row, 0.3) == "a"  # at a threshold only the span's score counts
    assert haystack_said(row, 0.5) is None
    assert haystack_said({"answers": [], "no_answer_score": 1.0}, None) is None


GOLDS = [["April 2000"], ["the red fox"], [], []]


def test_measure_squad2_arithmetic():
    m = measure(GOLDS, ["April 2000", "red fox jumps", None, "Paris"], ["April 2000", "fox", "x", "y"])
    # Per question F1: 1; "red fox jumps" against "red fox" (the article dropped): P 2/3, R 1, F1 0.8;
    # a refused unanswerable 1; an answered unanswerable 0. Mean (1 + 0.8 + 1 + 0) / 4 = 0.7.
    assert m["f1"] == pytest.approx(0.7)
    assert m["exact"] == pytest.approx(0.5)  # (1 + 0 + 1 + 0) / 4
    assert m["HasAns_f1"] == pytest.approx(0.9)  # (1 + 0.8) / 2
    assert (m["NoAns_refused"], m["HasAns_refused"]) == (1, 0)
    # Always answering: 1 and "fox" against "red fox" (P 1, R 1/2, F1 2/3): (1 + 2/3) / 2 = 5/6.
    assert m["HasAns_f1_always_answer"] == pytest.approx(5 / 6)


def test_measure_counts_a_refused_answerable_as_zero():
    m = measure([["April 2000"]], [None], ["April 2000"])
    assert (m["f1"], m["HasAns_refused"], m["HasAns_f1_always_answer"]) == (0.0, 1, 1.0)


def test_compare_matches_the_products_refusals():
    ours = [
        {"id": str(i), "answers": g,
         "ours": {"answer": s, "abstained": s is None, "candidate": s or "", "read_ms": ms}}
        for i, (g, s, ms) in enumerate(zip(GOLDS, ["April 2000", "red fox jumps", None, "Paris"], [10, 20, 30, 40]))
    ]
    theirs = [
        {"id": "0", "answers": [{"text": "April 2000", "score": 0.8}], "no_answer_score": 0.1, "read_ms": 5},
        {"id": "1", "answers": [{"text": "fox", "score": 0.5}], "no_answer_score": 0.7, "read_ms": 6},
        {"id": "2", "answers": [{"text": "x", "score": 0.3}], "no_answer_score": 0.2, "read_ms": 7},
        {"id": "3", "answers": [{"text": "y", "score": 0.6}], "no_answer_score": 0.3, "read_ms": 8},
    ][::-1]  # joined by id, not by order
    c = compare(ours, theirs)
    assert c["ours"]["f1"] == pytest.approx(0.7)  # as in test_measure_squad2_arithmetic
    assert c["ours"]["read_ms_p50"] == 25  # between 20 and 30
    # Shipped: question 1's no-answer (0.7) beats its span (0.5), so it is refused (0); the others answer:
    # 1, 0, 0 ("x" and "y" on unanswerable questions). (1 + 0 + 0 + 0) / 4 = 0.25.
    assert c["haystack"]["f1"] == pytest.approx(0.25)
    assert (c["haystack"]["NoAns_refused"], c["haystack"]["HasAns_refused"]) == (0, 1)
    # The product refused 1 of the 2 unanswerable; Haystack's scores there are 0.3 and 0.6, so t = 0.6
    # refuses exactly one. At 0.6: "April 2000" (0.8) answered (1), "fox" (0.5) refused (0), question 2
    # refused (1), "y" (0.6) answered (0): F1 (1 + 0 + 1 + 0) / 4 = 0.5, answerable F1 (1 + 0) / 2 = 0.5.
    m = c["haystack_matched"]
    assert m["threshold"] == 0.6
    assert m["NoAns_refused"] == c["ours"]["NoAns_refused"] == 1
    assert (m["f1"], m["HasAns_f1"], m["HasAns_refused"]) == (pytest.approx(0.5), pytest.approx(0.5), 1)
    # Always answering, Haystack's candidates: 1 and "fox" 2/3, as above.
    assert m["HasAns_f1_always_answer"] == pytest.approx(5 / 6)
    assert m["read_ms_p50"] == 6.5


def test_compare_needs_every_question_read_by_haystack():
    ours = [{"id": "a", "answers": [], "ours": {"answer": None, "abstained": True, "candidate": "", "read_ms": 1}}]
    with pytest.raises(ValueError, match="no Haystack row"):
        compare(ours, [])
