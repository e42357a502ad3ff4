"""Run the question set through the pipeline and measure it.

:func:`evaluate_questions` sends every question of ``eval/questions.jsonl`` through the same
:class:`~qa.answering.pipeline.QA` the app uses and reports retrieval (hit@k, MRR, nDCG), answers
(SQuAD EM/F1), abstention, citation validity, the reader on gold passages (to tell reader errors from
retriever errors), latency and a threshold sweep, overall and by question kind. :func:`write_outputs`
writes ``predictions.jsonl``, ``metrics.json`` and ``report.html``.

``qa eval`` (:mod:`qa.cli.evaluate`) is the command line; the SQuAD and BEIR runners live in
:mod:`qa.evaluation.benchmarks`, the threshold sweep in :mod:`qa.evaluation.thresholds`.

Example:
    >>> from qa import QA
    >>> result = evaluate_questions(QA.load("embeddings"), load_questions("eval/questions.jsonl"))
    >>> result.metrics["answers"]["f1"]
"""

from __future__ import annotations

import collections
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from qa.errors import InvalidInput, MissingPath
from qa.evaluation import selective
from qa.evaluation.common import (HIT_KS, RIGHT_F1, Record, candidate_right, candidate_rows, mean_of,
                                  reading_depth)
from qa.evaluation.metrics import (
    best_over_golds,
    exact_match,
    f1_score,
    hit_at_k,
    ndcg_at_k,
    percentile,
    reciprocal_rank,
)
from qa.evaluation.report import write_report
from qa.evaluation.thresholds import best_threshold, candidate_of, candidates_of, f1_at_threshold, threshold_sweep
from qa.jsonl import iter_jsonl, write_jsonl
from qa.retrieval import DEFAULT_MODE
from qa.types import Answer, Hit, Passage

logger = logging.getLogger(__name__)

KINDS = ("factoid", "paraphrase", "list", "why", "unanswerable")
RETRIEVAL_DEPTH = 10  # passages retrieved for hit@k, MRR@10 and nDCG@10


# --------------------------------------------------------------------------------------------
# The question set


@dataclass(frozen=True)
class Question:
    """One evaluation question; ``answers`` empty and ``doc_id`` ``None`` when the corpus can't answer it
    (a label from feedback may have answers and no ``doc_id``: any document holding the answer counts)."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: str | None
    kind: str

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def load_questions(path: str | Path) -> list[Question]:
    """Read a question set (one JSON object a line), checking its schema.

    Rows the app's feedback log writes (``"kind": "feedback"``) may sit in the same file; those a
    person confirmed or corrected become labels (see :func:`feedback_as_label`), the others are
    skipped with a count in the log.

    Raises:
        MissingPath: no file at ``path``.
        InvalidInput: a line is not valid JSON or breaks the schema; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"No question set at {path} (pass --questions FILE).")
    questions, seen, skipped = [], set(), collections.Counter()
    for n, row in iter_jsonl(path):
        where = f"{path}, line {n}"
        if isinstance(row, dict) and row.get("kind") == "feedback":
            label = feedback_as_label(row, where)
            if isinstance(label, str):
                skipped[label] += 1
                continue
            q = label
        else:
            q = _question_from_row(row, where)
        if q.id in seen:
            raise InvalidInput(f"{where}: duplicate id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if skipped:
        logger.info("%s: %d feedback row(s) skipped, not labels (%s); a row is a label when it has "
                    "\"confirmed\": true or a \"correction\"", path, sum(skipped.values()),
                    ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())))
    if not questions:
        raise InvalidInput(f"{path} holds no questions.")
    return questions


def feedback_as_label(row: dict, where: str = "feedback row") -> Question | str:
    """The label a feedback row makes, or why it makes none.

    A non-empty ``"correction"`` is the gold answer, in the document the row names (``"doc_id"``) or,
    without one, in any document. Otherwise ``"confirmed": true`` makes the answer shown the gold
    answer, in the document it cited. A thumbs-up alone (``"rating"`` or the older ``"verdict"``
    ``"up"``) is not a label: it rates the model's own answer. An abstention is a label only when
    corrected.

    Returns:
        A factoid :class:`Question`, or the reason the row is skipped (a short phrase for the log).

    Raises:
        InvalidInput: the row lacks an ``id`` or a ``question``.
    """
    if not (isinstance(row.get("id"), str) and row["id"] and isinstance(row.get("question"), str)
            and row["question"].strip()):
        raise InvalidInput(f"{where}: a feedback row needs a non-empty 'id' and 'question'")
    correction = row.get("correction")
    answer = row.get("answer")
    if isinstance(correction, str) and correction.strip():
        gold, doc_id = correction.strip(), row.get("doc_id") if isinstance(row.get("doc_id"), str) else None
    elif row.get("abstained") or not (isinstance(answer, str) and answer.strip()):
        return "abstained without a correction"
    elif row.get("confirmed") is True:
        citations = row.get("citations") or []
        gold = answer.strip()
        doc_id = citations[0].get("doc_id") if citations else row.get("doc_id")
    elif "up" in (row.get("rating"), row.get("verdict")):
        return "thumbs-up without a confirmation"
    else:
        return "neither confirmed nor corrected"
    return Question(row["id"], row["question"].strip(), (gold,), doc_id if isinstance(doc_id, str) else None, "factoid")


def _question_from_row(row: Any, where: str) -> Question:
    keys = {"id", "question", "answers", "doc_id", "kind"}
    if not isinstance(row, dict) or set(row) != keys:
        got = sorted(row) if isinstance(row, dict) else repr(row)
        raise InvalidInput(f"{where}: expected exactly the keys {sorted(keys)}, got {got}")
    if not (isinstance(row["id"], str) and row["id"] and isinstance(row["question"], str) and row["question"].strip()):
        raise InvalidInput(f"{where}: 'id' and 'question' must be non-empty strings")
    answers = row["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise InvalidInput(f"{where}: 'answers' must be a list of non-empty strings")
    if row["kind"] not in KINDS:
        raise InvalidInput(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {row['kind']!r}")
    unanswerable = row["kind"] == "unanswerable"
    if unanswerable != (not answers) or unanswerable != (row["doc_id"] is None):
        raise InvalidInput(f"{where}: unanswerable questions (and only they) have answers [] and doc_id null")
    if row["doc_id"] is not None and not isinstance(row["doc_id"], str):
        raise InvalidInput(f"{where}: 'doc_id' must be a string or null")
    return Question(row["id"], row["question"].strip(), tuple(answers), row["doc_id"], row["kind"])


def contains_answer(text: str, answer: str) -> bool:
    """``answer`` occurs verbatim in ``text``, not as part of a longer word ("88" is not in "1988")."""
    left = r"(?<!\w)" if re.match(r"\w", answer) else ""
    right = r"(?!\w)" if re.search(r"\w$", answer) else ""
    return re.search(left + re.escape(answer) + right, text) is not None


def gold_passages(question: Question, passages: Sequence[Passage]) -> list[Passage]:
    """The passages of the question's document (of any document for a label without one, such as a
    corrected feedback row) that contain one of its answers: the relevant ones."""
    if not question.answerable:
        return []
    return [p for p in passages if question.doc_id in (None, p.doc_id)
            and any(contains_answer(p.text, a) for a in question.answers)]


# --------------------------------------------------------------------------------------------
# Running the question set through the pipeline


@dataclass
class QuestionsResult:
    """A question-set run: per-question records, summary metrics and the threshold sweep."""

    records: list[Record]
    metrics: dict
    sweep: list[tuple[float, float]]


def evaluate_questions(
    qa,
    questions: Sequence[Question],
    k: int | None = None,
    mode: str = DEFAULT_MODE,
    threshold: float | None = None,
    show_progress: bool = False,
) -> QuestionsResult:
    """Ask every question through ``qa`` (a :class:`~qa.answering.pipeline.QA`, or anything shaped like it).

    Per question: ``qa.ask_scored`` for the answer and its candidates' features, ``qa.retriever.search`` (10 passages) for retrieval
    metrics, and ``qa.answer_from_hits`` on the gold passages for the reader alone. The first
    question is asked once before timing starts, so model loading stays out of the latencies.

    Args:
        qa: the pipeline: ``.ask``, ``.ask_scored``, ``.answer_from_hits``, ``.retriever`` (with ``.search`` and
            ``.index.passages``), ``.documents`` and ``.threshold``.
        questions: the question set (see :func:`load_questions`).
        k: passages given to the reader (``None``: ``qa.top_k``, what its calibration was fitted on).
        mode: retrieval mode.
        threshold: no-answer threshold; ``None`` uses ``qa.threshold``.
        show_progress: show a progress bar.

    Raises:
        InvalidInput: no questions, ``k < 1``, or a question names a document the index lacks.
    """
    from tqdm.auto import tqdm

    if not questions:
        raise InvalidInput("The question set is empty.")
    k = reading_depth(qa, k)
    if k < 1:
        raise InvalidInput(f"-k must be at least 1, got {k}.")
    threshold = qa.threshold if threshold is None else threshold
    unknown = sorted({q.doc_id for q in questions if q.doc_id is not None} - set(qa.documents))
    if unknown:
        raise InvalidInput(f"Questions refer to documents the index lacks: {', '.join(unknown)}. "
                         "Evaluate on an index of the documents the questions were written for.")
    passages = qa.retriever.index.passages
    qa.ask(questions[0].question, top_k=k, mode=mode, threshold=threshold)  # warm-up: load the models
    records = []
    for q in tqdm(questions, desc="eval", unit="q", disable=not show_progress):
        records.append(_evaluate_one(qa, q, passages, k, mode, threshold))
    no_gold = [r["id"] for r in records if r["retrieval"] is not None and not r["retrieval"]["relevant"]]
    if no_gold:
        logger.warning("%d answerable question(s) have no index passage holding an answer: %s", len(no_gold), no_gold)
    candidates = candidates_of(records)
    sweep = threshold_sweep(candidates)
    best_t, best_f1 = best_threshold(candidates)
    metrics = summarize(records)
    metrics["by_kind"] = {kind: summarize([r for r in records if r["kind"] == kind])
                          for kind in KINDS if any(r["kind"] == kind for r in records)}
    metrics["threshold"] = {"current": threshold, "current_overall_f1": f1_at_threshold(candidates, threshold),
                            "best": best_t, "best_overall_f1": best_f1}
    metrics["questions_without_gold_passage"] = no_gold
    metrics["config"] = {"k": k, "mode": mode, "threshold": threshold, "retrieval_depth": RETRIEVAL_DEPTH,
                         "right_f1": RIGHT_F1}
    return QuestionsResult(records, metrics, sweep)


def _evaluate_one(qa, q: Question, passages: Sequence[Passage], k: int, mode: str, threshold: float) -> Record:
    golds = list(q.answers)
    scored = qa.ask_scored(q.question, top_k=k, mode=mode, threshold=threshold)
    answer: Answer = scored.answer
    prediction = answer.text or ""
    best = answer.alternatives[0] if answer.alternatives else None
    candidate_text = best.text if best else ""
    candidate = candidate_of(golds, candidate_text, answer.score)
    record: Record = {
        "id": q.id, "question": q.question, "kind": q.kind, "doc_id": q.doc_id, "answers": golds,
        "answer": answer.text, "abstained": answer.abstained, "score": answer.score,
        "features": scored.features[0] if scored.features else {}, "candidates": candidate_rows(scored),
        "em": best_over_golds(exact_match, prediction, golds), "f1": best_over_golds(f1_score, prediction, golds),
        "candidate": {"text": candidate_text, "f1": candidate.if_answered if golds else None, "sweep": vars(candidate)},
        "citations": [c.to_dict() for c in answer.citations],
        "citation": _check_citations(answer, qa.documents),
        "passages": [{"rank": h.rank, "score": h.score, "passage_id": h.passage.id, "doc_id": h.passage.doc_id,
                      "start": h.passage.start, "end": h.passage.end} for h in answer.hits],
        "timings": {key: float(answer.timings.get(key, float("nan"))) for key in ("retrieve_ms", "read_ms", "total_ms")},
        "retrieval": None, "gold_passage": None, "gold_in_context": None,
    }
    if not q.answerable:
        return record
    relevant = gold_passages(q, passages)
    relevant_ids = {p.id for p in relevant}
    ranked = [h.passage.id for h in qa.retriever.search(q.question, top_k=max(RETRIEVAL_DEPTH, k), mode=mode)]
    ranks = [i for i, pid in enumerate(ranked, start=1) if pid in relevant_ids]
    record["retrieval"] = {
        "relevant": sorted(relevant_ids), "ranks": ranks,
        "rr@10": reciprocal_rank(ranks, RETRIEVAL_DEPTH),
        "ndcg@10": ndcg_at_k(ranked, {pid: 1.0 for pid in relevant_ids}, RETRIEVAL_DEPTH),
    }
    record["gold_in_context"] = any(h.passage.id in relevant_ids for h in answer.hits)
    if relevant:
        gold = qa.answer_from_hits(q.question, [Hit(p, 1.0, i) for i, p in enumerate(relevant, start=1)], threshold)
        text = gold.text or ""
        span = gold.alternatives[0].text if gold.alternatives else ""
        record["gold_passage"] = {"answer": gold.text, "abstained": gold.abstained, "score": gold.score,
                                  "em": best_over_golds(exact_match, text, golds),
                                  "f1": best_over_golds(f1_score, text, golds),
                                  "span": span, "span_f1": best_over_golds(f1_score, span, golds)}
    return record


def _check_citations(answer: Answer, documents: Mapping) -> dict | None:
    """Whether every citation quotes its document exactly, and the first one holds the answer."""
    if answer.abstained:
        return None
    verbatim = bool(answer.citations) and all(
        c.doc_id in documents and documents[c.doc_id].text[c.start : c.end] == c.quote for c in answer.citations
    )
    has_answer = bool(answer.citations) and bool(answer.text) and answer.text in answer.citations[0].quote
    return {"verbatim": verbatim, "contains_answer": has_answer, "valid": verbatim and has_answer}


def summarize(records: Sequence[Record]) -> dict:
    """Metrics of a set of records (all questions, or one kind); ``None`` where no question applies."""
    answerable = [r for r in records if r["answers"]]
    unanswerable = [r for r in records if not r["answers"]]
    with_retrieval = [r for r in answerable if r["retrieval"] is not None]
    answered = [r for r in records if r["citation"] is not None]
    with_gold = [r for r in answerable if r["gold_passage"] is not None]
    out: dict = {"questions": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable)}
    out["retrieval"] = None if not with_retrieval else {
        **{f"hit@{n}": mean_of(hit_at_k(r["retrieval"]["ranks"], n) for r in with_retrieval) for n in HIT_KS},
        "mrr@10": mean_of(r["retrieval"]["rr@10"] for r in with_retrieval),
        "ndcg@10": mean_of(r["retrieval"]["ndcg@10"] for r in with_retrieval),
    }
    out["answers"] = None if not answerable else {
        "em": mean_of(r["em"] for r in answerable), "f1": mean_of(r["f1"] for r in answerable),
    }
    out["overall"] = {"em": mean_of(r["em"] for r in records), "f1": mean_of(r["f1"] for r in records)}
    out["abstention"] = {
        "unanswerable_refused": mean_of(float(r["abstained"]) for r in unanswerable),
        "answerable_wrongly_refused": mean_of(float(r["abstained"]) for r in answerable),
    }
    out["citations"] = None if not answered else {
        "answered": len(answered),
        "verbatim": mean_of(float(r["citation"]["verbatim"]) for r in answered),
        "contains_answer": mean_of(float(r["citation"]["contains_answer"]) for r in answered),
        "valid": mean_of(float(r["citation"]["valid"]) for r in answered),
    }
    # The reader on gold passages against retrieved ones, with the threshold and without it (best span).
    out["reader"] = None if not answerable else {
        "gold_passage_em": mean_of(r["gold_passage"]["em"] for r in with_gold),
        "gold_passage_f1": mean_of(r["gold_passage"]["f1"] for r in with_gold),
        "retrieved_em": mean_of(r["em"] for r in with_gold),
        "retrieved_f1": mean_of(r["f1"] for r in with_gold),
        "gold_passage_span_f1": mean_of(r["gold_passage"]["span_f1"] for r in with_gold),
        "retrieved_span_f1": mean_of(r["candidate"]["f1"] for r in with_gold),
        "errors": _error_counts(answerable),
    }
    # Selective QA: the best candidate of every question ranked by its score, right when F1 >= 0.5.
    out["selective"] = selective.summary([r["score"] for r in records], [candidate_right(r) for r in records])
    out["latency_ms"] = {stage: _latency(records, f"{stage}_ms") for stage in ("retrieve", "read", "total")}
    return out


def _latency(records: Sequence[Record], key: str) -> dict:
    values = [r["timings"][key] for r in records if not math.isnan(r["timings"][key])]
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


def _error_counts(answerable: Sequence[Record]) -> dict:
    """Right answers; wrong ones as retriever misses (no relevant passage read), refusals or reader errors."""
    counts = {"right": 0, "retriever_miss": 0, "refused": 0, "reader_error": 0}
    for r in answerable:
        if r["f1"] >= RIGHT_F1:
            counts["right"] += 1
        elif not r["gold_in_context"]:
            counts["retriever_miss"] += 1
        elif r["abstained"]:
            counts["refused"] += 1
        else:
            counts["reader_error"] += 1
    return counts


def rethreshold(records: Sequence[Record], threshold: float) -> list[Record]:
    """The records as they would be at another threshold (the reader's best span is kept in each).

    Citations and the gold-passage run are left as they were; only answers, abstention, EM and F1 change.
    """
    out = []
    for r in records:
        r = dict(r)
        answered = bool(r["candidate"]["text"]) and r["score"] >= threshold
        r["answer"] = r["candidate"]["text"] if answered else None
        r["abstained"] = not answered
        prediction = r["answer"] or ""
        r["em"] = best_over_golds(exact_match, prediction, r["answers"])
        r["f1"] = best_over_golds(f1_score, prediction, r["answers"])
        out.append(r)
    return out


def write_outputs(result: QuestionsResult, out_dir: str | Path, title: str = "qa evaluation") -> dict[str, Path]:
    """Write ``predictions.jsonl``, ``metrics.json`` and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": out / "predictions.jsonl", "metrics": out / "metrics.json", "report": out / "report.html"}
    write_jsonl(paths["predictions"], result.records)
    paths["metrics"].write_text(json.dumps(result.metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(paths["report"], result.metrics, result.records, result.sweep, title=title)
    return paths
