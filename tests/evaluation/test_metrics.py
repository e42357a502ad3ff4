"""qa.evaluation.metrics against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest

from qa.evaluation.metrics import (
    best_over_golds,
    exact_match,
    f1_score,
    hit_at_k,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    reciprocal_rank,
)


# ---------------------------------------------------------------- SQuAD normalisation, EM, F1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat", "cat"),  # lower case, article dropped
        ("a  primary   care trust", "primary care trust"),  # article dropped, spaces collapsed
        ("£600,000.", "£600000"),  # ASCII punctuation goes ("," and "."), "£" is not ASCII punctuation and stays
        ("‘two-tierism’", "‘twotierism’"),  # the hyphen goes; curly quotes are not in string.punctuation
        ("Theatre and an anthem", "theatre and anthem"),  # only whole words: "Theatre", "anthem" keep their letters
        ("The", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match("the Healthcare Commission.", "Healthcare Commission") == 1.0
    assert exact_match("April 2000", "april, 2000") == 1.0  # "april 2000" both ways
    assert exact_match("April 2000", "April 2001") == 0.0
    assert exact_match("April", "April 2000") == 0.0  # a part is not a match


def test_f1_partial_overlap():
    # pred "april 2000" (2 tokens), gold "in april 2000" (3 tokens): 2 common,
    # precision 2/2 = 1, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = (4/3) / (5/3) = 0.8
    assert f1_score("April 2000", "in April 2000") == pytest.approx(0.8)


def test_f1_counts_repeated_tokens_once_per_occurrence():
    # pred "care care care" vs gold "primary care": common = min(3, 1) = 1 token;
    # precision 1/3, recall 1/2, F1 = 2 * (1/3) * (1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 0.4
    assert f1_score("care care care", "primary care") == pytest.approx(0.4)


def test_f1_after_normalisation():
    # "The NHS Alliance" -> "nhs alliance"; "NHS Alliance's report" -> "nhs alliances report":
    # common {"nhs"} = 1; precision 1/2, recall 1/3, F1 = 2 * (1/2) * (1/3) / (5/6) = (1/3) / (5/6) = 0.4
    assert f1_score("The NHS Alliance", "NHS Alliance's report") == pytest.approx(0.4)


def test_f1_no_overlap_and_empty_cases():
    assert f1_score("Ofcare", "Healthcare Commission") == 0.0
    # SQuAD v2: empty against empty is 1, empty against non-empty is 0 (either way round).
    assert f1_score("", "") == 1.0
    assert f1_score("the", "") == 1.0  # "the" normalises to nothing
    assert f1_score("", "April 2000") == 0.0
    assert f1_score("April 2000", "") == 0.0


def test_best_over_golds_takes_the_best_gold():
    golds = ["£75bn", "£75bn a year"]
    # against "£75bn": 1 common of pred "£75bn a year" -> tokens ["£75bn", "year"] (article "a" dropped):
    # precision 1/2, recall 1/1, F1 = 2/3; against "£75bn a year": identical, F1 = 1 -> best 1.0
    assert best_over_golds(f1_score, "£75bn a year", golds) == 1.0
    assert best_over_golds(f1_score, "£75bn a year", golds[:1]) == pytest.approx(2 / 3)
    assert best_over_golds(exact_match, "75bn", golds) == 0.0  # "£" survives normalisation


def test_best_over_golds_no_golds_means_no_answer():
    assert best_over_golds(f1_score, "", []) == 1.0
    assert best_over_golds(exact_match, "Care Trusts", []) == 0.0


# ---------------------------------------------------------------- ranking metrics


def test_hit_at_k():
    # relevant items at ranks 3 and 7
    assert hit_at_k([3, 7], 1) == 0.0
    assert hit_at_k([3, 7], 3) == 1.0  # rank 3 counts at k = 3
    assert hit_at_k([7, 3], 5) == 1.0  # order of the ranks does not matter
    assert hit_at_k([], 10) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank([3, 7]) == pytest.approx(1 / 3)  # first relevant at rank 3
    assert reciprocal_rank([7, 3]) == pytest.approx(1 / 3)
    assert reciprocal_rank([12], k=10) == 0.0  # beyond the cut-off
    assert reciprocal_rank([10], k=10) == pytest.approx(0.1)
    assert reciprocal_rank([]) == 0.0


def test_ndcg_two_relevant_at_ranks_1_and_3():
    # ranks [rel, non, rel], 2 relevant: DCG = 1/log2(2) + 1/log2(4) = 1 + 1/2 = 1.5,
    # IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.63093 = 1.63093, nDCG = 1.5 / 1.63093 = 0.91972
    assert ndcg_at_k(["a", "x", "b"], {"a": 1, "b": 1}, k=3) == pytest.approx(0.91972, abs=1e-5)


def test_ndcg_relevant_below_the_cutoff_counts_in_the_ideal_only():
    # ranks [non, rel] at k = 1: DCG@1 = 0, so nDCG@1 = 0 although a relevant item follows.
    assert ndcg_at_k(["x", "a"], {"a": 1}, k=1) == 0.0
    # ranks [non, rel] at k = 2: DCG = 1/log2(3) = 0.63093, IDCG = 1, nDCG = 0.63093
    assert ndcg_at_k(["x", "a"], {"a": 1}, k=2) == pytest.approx(0.63093, abs=1e-5)


def test_ndcg_graded_gains_are_linear():
    # grades a=2, b=1; ranking [b, a]: DCG = 1/1 + 2/log2(3) = 1 + 1.26186 = 2.26186,
    # ideal [a, b]: IDCG = 2/1 + 1/log2(3) = 2 + 0.63093 = 2.63093, nDCG = 0.85972
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, k=10) == pytest.approx(0.85972, abs=1e-5)


def test_ndcg_ideal_is_cut_at_k_and_zero_grades_ignored():
    # 3 relevant, k = 2, ranking [a, b]: DCG = 1 + 1/log2(3) = IDCG (ideal also holds only 2) -> 1.0
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1, "c": 1, "z": 0}, k=2) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], {"z": 0}, k=10) == 0.0  # nothing relevant: 0, not a division by zero


def test_recall_at_k():
    # 4 relevant (a, b, c, d); top 3 of [a, x, c, b] holds a and c: 2/4 = 0.5; top 4 adds b: 3/4
    relevance = {"a": 1, "b": 1, "c": 1, "d": 2, "z": 0}
    assert recall_at_k(["a", "x", "c", "b"], relevance, k=3) == pytest.approx(0.5)
    assert recall_at_k(["a", "x", "c", "b"], relevance, k=4) == pytest.approx(0.75)
    assert recall_at_k(["z"], relevance, k=1) == 0.0  # a grade-0 document is not relevant
    assert recall_at_k(["a"], {}, k=1) == 0.0


def test_percentile_interpolates_like_numpy():
    values = [10.0, 20.0, 30.0, 40.0]
    # position = (n - 1) * q / 100: q=50 -> 1.5 -> 20 + 0.5 * (30 - 20) = 25
    assert percentile(values, 50) == pytest.approx(25.0)
    # q=95 -> 2.85 -> 30 + 0.85 * 10 = 38.5
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([40.0, 10.0, 30.0, 20.0], 0) == 10.0  # sorts first
    assert percentile(values, 100) == 40.0
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))


def test_edge_cases_found_in_review():
    from qa.evaluation.metrics import best_over_golds, exact_match, f1_score, ndcg_at_k, reciprocal_rank

    # No gold answers: a prediction that normalises to nothing ("the", ".") is the right "no answer".
    assert best_over_golds(f1_score, "the", []) == 1.0
    assert best_over_golds(exact_match, "April", []) == 0.0
    # A repeated id counts once: ["a", "a"] with one relevant "a" is a perfect ranking, nDCG 1, not 1.63.
    assert ndcg_at_k(["a", "a"], {"a": 1}) == 1.0
    with pytest.raises(ValueError, match="start at 1"):
        reciprocal_rank([0])
