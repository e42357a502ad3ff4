"""Fit a reader's calibrator on open-corpus runs, choose its threshold and bands, measure it elsewhere.

Input: the rows of ``qa eval squad --open`` runs (``predictions.jsonl``), each with the best
candidate's features, its text and the gold answers; or the records of ``qa eval`` on a question set.
The candidate is what the pipeline answers whatever the threshold, so a calibrator and a threshold
can be fitted and measured on saved rows without running the models again: the figures equal what
the pipeline gives with that calibration.

Rows that record every candidate of their question (``candidates``: text and features, as runs do
since the calibrator learned to choose) are fitted on all of them, right or wrong, and the fitted
calibrator then also *picks* the answer: the candidate it finds most likely right, which is not
always the reader's highest-scoring span. Its threshold and bands are chosen on the picked ones.

:func:`qa.evaluation.calibrate.fit_from_runs` reads the run files, fits, measures and saves with the reader.

Example:
    $ qa eval fit-calibrator --train runs/a/predictions.jsonl --test runs/b/predictions.jsonl
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qa.answering.calibrator import Calibrator, fit_calibrator
from qa.answering.features import FEATURES
from qa.evaluation import selective
from qa.evaluation.common import RIGHT_F1, mean_of
from qa.evaluation.metrics import best_over_golds, exact_match, f1_score
from qa.jsonl import read_jsonl

TARGET_PRECISION = 0.65  # answered questions right (F1 >= 0.5) at the default threshold, on the training runs
HIGH_PRECISION = 0.90  # "High confidence": right 9 times in 10 on the training runs


def load_rows(paths: Sequence[str | Path]) -> list[dict]:
    """Rows of open-corpus runs or question-set records, as ``{features, candidate, gold, answerable, source}``.

    Raises:
        ValueError: a row without features (a run made before features were recorded).
    """
    rows = []
    for path in paths:
        for row in read_jsonl(path):
            if "gold" in row:  # an open-corpus row
                gold, candidate = row["gold"], row["candidate"]
            else:  # a question-set record (qa eval)
                gold, candidate = row["answers"], row["candidate"]["text"]
            if not row.get("features") and candidate:
                raise ValueError(f"{path}: a row without features; run the evaluation again with this version")
            rows.append({"features": row.get("features") or {}, "candidate": candidate, "gold": list(gold),
                         "answerable": bool(gold), "source": str(path),
                         "candidates": [c for c in row.get("candidates") or [] if c.get("text")]})
    return rows


def candidate_scores(row: dict, text: str | None = None) -> tuple[float, float, bool]:
    """EM and F1 of the row's candidate (or of ``text``, another of its candidates) if it were answered,
    and whether it is right."""
    text = row["candidate"] if text is None else text
    if not row["answerable"] or not text:
        return 0.0, 0.0, False
    f1 = best_over_golds(f1_score, text, row["gold"])
    return best_over_golds(exact_match, text, row["gold"]), f1, f1 >= RIGHT_F1


def choose(row: dict, calibrator: Calibrator | None, picks: bool = False) -> tuple[str, float]:
    """The candidate the pipeline answers with for this row, and its score.

    With ``picks`` (a calibrator fitted on every candidate) and the row's candidates recorded, that is
    the candidate with the highest P(right), the first of equals; otherwise the row's own candidate.
    """
    if not row["candidate"]:
        return "", 0.0
    if calibrator is None:
        return row["candidate"], row["features"].get("span_score", 0.0)
    if picks and row.get("candidates"):
        scored = [(calibrator.probability(c["features"]), -i, c["text"]) for i, c in enumerate(row["candidates"])]
        score, _, text = max(scored)
        return text, score
    return row["candidate"], calibrator.probability(row["features"])


def threshold_for_precision(scores: Sequence[float], right: Sequence[bool], target: float) -> float:
    """The lowest threshold whose answered questions are at least ``target`` precise (1.0 if none is)."""
    _, threshold = selective.coverage_at_precision(scores, right, target)
    return 1.0 if threshold is None else float(threshold)


def measure(rows: Sequence[dict], calibrator: Calibrator | None, threshold: float,
            bands: Sequence[dict] = (), picks: bool = False) -> dict:
    """What the pipeline would score on ``rows`` with this calibration (SQuAD 2.0 style); ``picks``: the
    calibrator chooses among each row's candidates (:func:`choose`)."""
    scores, right, em, f1 = [], [], [], []
    answerable = [r["answerable"] for r in rows]
    for r in rows:
        text, score = choose(r, calibrator, picks)
        c_em, c_f1, ok = candidate_scores(r, text)
        answered = bool(r["candidate"]) and score >= threshold
        scores.append(score)
        right.append(ok)
        em.append(c_em if answered else float(not r["answerable"]))
        f1.append(c_f1 if answered else float(not r["answerable"]))
    n = len(rows)
    has = [i for i in range(n) if answerable[i]]
    no = [i for i in range(n) if not answerable[i]]

    def mean(idx, values) -> float | None:
        return mean_of(values[i] for i in idx)

    refused = [float(scores[i] < threshold or not rows[i]["candidate"]) for i in range(n)]
    out = {
        "questions": n, "answerable": len(has), "unanswerable": len(no),
        "exact": mean(range(n), em), "f1": mean(range(n), f1),
        "HasAns_f1": mean(has, f1), "NoAns_refused": mean(no, refused), "answerable_refused": mean(has, refused),
        **{k: v for k, v in selective.summary(scores, right).items() if k != "questions"},
    }
    upper = float("inf")
    for band in bands:  # most confident first; each band holds the scores from its min up to the next band's
        chosen = [i for i in range(n) if band["min"] <= scores[i] < upper and rows[i]["candidate"]]
        out[f"band_{band['name']}"] = {"answers": len(chosen), "right": mean(chosen, right)}
        upper = band["min"]
    return out


def recorded(rows: Sequence[dict], features: Sequence[str] = FEATURES) -> tuple[str, ...]:
    """The ``features`` that every row and every candidate of ``rows`` records (a run made before a feature was
    added lacks it, and a calibrator is fitted only on what its fit runs measured)."""
    found = [r["features"] for r in rows] + [c["features"] for r in rows for c in r.get("candidates") or []]
    return tuple(f for f in features if all(f in row for row in found))


MIN_FOLDS = 3  # runs needed to rescale the calibrator's probabilities on out-of-fold scores


def _fit_rows(rows: Sequence[dict], picks: bool, features: Sequence[str]) -> Calibrator:
    """A calibrator fitted on every candidate of ``rows`` (``picks``) or on each row's own."""
    if picks:
        every = [(c["features"], candidate_scores(r, c["text"])[2]) for r in rows for c in r["candidates"]]
        return fit_calibrator([x for x, _ in every], [y for _, y in every], features=features)
    return fit_calibrator([r["features"] for r in rows], [candidate_scores(r)[2] for r in rows], features=features)


def _chosen_logit(row: dict, calibrator: Calibrator, picks: bool) -> tuple[float, bool]:
    """The log-odds of the candidate ``calibrator`` answers ``row`` with, and whether that candidate is right."""
    text, _ = choose(row, calibrator, picks)
    features = next((c["features"] for c in row.get("candidates") or [] if c["text"] == text), row["features"]) \
        if picks else row["features"]
    return calibrator.logit(features), candidate_scores(row, text)[2]


def out_of_fold_scaling(rows: Sequence[dict], picks: bool, features: Sequence[str]) -> tuple[float, float] | None:
    """Platt scaling (slope, shift) of the calibrator's log-odds, fitted on out-of-fold answers: each run's
    rows answered by a calibrator fitted on the other runs, as a new corpus will be. ``None`` with fewer than
    :data:`MIN_FOLDS` runs.

    A calibrator fitted on a corpus is over-confident on its own rows (it has seen their answers); rescaled
    on out-of-fold answers, the probability it shows is what an answer of that confidence was worth on
    corpora it had not seen, so the number beside an answer and the band's measured precision agree.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    sources = sorted({r["source"] for r in rows})
    if len(sources) < MIN_FOLDS:
        return None
    z, y = [], []
    for source in sources:
        fold = _fit_rows([r for r in rows if r["source"] != source], picks, features)
        for r in rows:
            if r["source"] == source:
                logit, right = _chosen_logit(r, fold, picks)
                z.append(logit)
                y.append(right)
    if len(set(y)) < 2:
        return None
    model = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(z).reshape(-1, 1), np.asarray(y, dtype=int))
    slope, shift = float(model.coef_[0][0]), float(model.intercept_[0])
    return (slope, shift) if slope > 0 else None


def fit(train: Sequence[dict], target_precision: float = TARGET_PRECISION,
        high_precision: float = HIGH_PRECISION, features: Sequence[str] = FEATURES,
        rescale: bool = True) -> dict:
    """Fit the calibrator, rescale its probabilities out of fold, then choose the threshold and bands on the
    training rows.

    When every training row records its candidates, the calibrator is fitted on all of them (each
    labelled right or wrong against the row's gold answers) and picks the answer (``"picks": true``);
    otherwise on each row's best candidate only. With rows from :data:`MIN_FOLDS` runs or more, its
    log-odds are then rescaled (:func:`out_of_fold_scaling`): the same answers in the same order, with
    probabilities measured on runs it was not fitted on. The threshold and bands are chosen on the
    training rows' rescaled scores (a monotone rescaling answers the same questions).

    Returns:
        The ``calibration.json`` content (without where it was trained: the caller adds that).
    """
    with_candidate = [r for r in train if r["candidate"]]
    picks = bool(with_candidate) and all(r.get("candidates") for r in with_candidate)
    features = recorded(with_candidate, features)
    calibrator = _fit_rows(with_candidate, picks, features)
    scaling = out_of_fold_scaling(with_candidate, picks, features) if rescale else None
    if scaling is not None:
        calibrator = calibrator.rescaled(*scaling)
    chosen = [choose(r, calibrator, picks) for r in with_candidate]
    scores = [score for _, score in chosen]
    labels = [candidate_scores(r, text)[2] for r, (text, _) in zip(with_candidate, chosen)]
    threshold = threshold_for_precision(scores, labels, target_precision)
    high = max(threshold, threshold_for_precision(scores, labels, high_precision))
    bands = [{"name": "High", "min": round(high, 6), "precision": high_precision},
             {"name": "Medium", "min": round(threshold, 6), "precision": target_precision}]
    return {"threshold": round(threshold, 6), "target_precision": target_precision, "calibrator": calibrator.to_dict(),
            "picks": picks, "bands": bands, "weights": [[name, round(w, 4)] for name, w in calibrator.weights()],
            **({"rescaled_out_of_fold": {"slope": round(scaling[0], 6), "shift": round(scaling[1], 6)}}
               if scaling is not None else {})}


def reliability_table(rows: Sequence[dict], calibrator: Calibrator | None, picks: bool = False,
                      bins: int = 10) -> list[dict]:
    """How often the answers in each tenth of the score range were right on ``rows`` (runs the calibrator
    was not fitted on): ``[{"low", "high", "answers", "right"}]``, empty tenths left out. The app quotes the
    row of an answer's score beside it, so the number shown and what it was worth elsewhere sit together."""
    chosen = [(r, choose(r, calibrator, picks)) for r in rows if r["candidate"]]
    scores = [score for _, (_, score) in chosen]
    right = [candidate_scores(r, text)[2] for r, (text, _) in chosen]
    return [{"low": round(b.low, 3), "high": round(b.high, 3), "answers": b.count, "right": round(b.accuracy, 4)}
            for b in selective.reliability(scores, right, bins)]
