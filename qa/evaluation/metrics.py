"""Answer and retrieval metrics: SQuAD EM/F1 (official normalisation), hit@k, MRR, nDCG, recall.

Every function takes plain values, so the evaluation runner, the benchmarks and the tests share them.
"""

from __future__ import annotations

import collections
import math
from typing import Iterable, Mapping, Sequence

from qa.text import normalize_answer


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 after normalisation (SQuAD v2: empty against empty is 1, else 0)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """The best score of ``prediction`` against any gold answer; golds empty means 'no answer'."""
    if not golds:
        return metric(prediction, "")  # normalised, as the official script: "the" or "." is no answer
    return max(metric(prediction, g) for g in golds)


def hit_at_k(relevant_ranks: Iterable[int], k: int) -> float:
    """1.0 if any relevant item has rank <= k (ranks start at 1)."""
    return float(any(r <= k for r in relevant_ranks))


def reciprocal_rank(relevant_ranks: Iterable[int], k: int = 10) -> float:
    """1 / rank of the first relevant item within the top k, else 0."""
    ranks = list(relevant_ranks)
    if any(r < 1 for r in ranks):
        raise ValueError(f"Ranks start at 1, got {min(ranks)}.")
    ranks = [r for r in ranks if r <= k]
    return 1.0 / min(ranks) if ranks else 0.0


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k with linear gains (as pytrec_eval and BEIR): DCG = sum rel_i / log2(i + 1)."""
    ranked_ids = list(dict.fromkeys(ranked_ids))  # a repeated id counts once, at its first rank
    dcg = sum(relevance.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(ranked_ids[:k]))
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, float], k: int = 100) -> float:
    """Share of the relevant ids (relevance > 0) found in the top k."""
    relevant = {d for d, g in relevance.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranked_ids[:k])) / len(relevant)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, like numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
