"""Open-corpus evaluation: any SQuAD-format file asked the way the product is used.

The file becomes a folder of documents, one per article with its paragraphs in order; the folder is
indexed with the product's own chunking, and every question, unanswerable ones included, goes through
the whole pipeline: retrieve over all articles, read, abstain or answer, cite. This measures what a
user of a corpus nobody here wrote would see, where the gold-passage benchmark (``qa eval squad``)
measures the reader alone.

Scored as SQuAD 2.0 scores: an unanswerable question is right (EM = F1 = 1) when the pipeline
abstains, an answerable one by its best EM/F1 over the gold answers (0 when it abstains). Retrieval
counts a hit when a passage holds a gold answer's exact place in the article.

Example:
    >>> from qa.evaluation.open_corpus import evaluate_open_corpus
    >>> metrics, rows = evaluate_open_corpus("dev.json", "runs/open/dev")
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

from qa.evaluation import selective
from qa.evaluation.common import RIGHT_F1, candidate_rows, mean_of, reading_depth
from qa.evaluation.metrics import best_over_golds, exact_match, f1_score, percentile
from qa.squad import OpenQuestion, write_corpus

logger = logging.getLogger(__name__)

HIT_KS = (1, 5)


def _hit_rank(question: OpenQuestion, hits) -> int | None:
    for h in hits:
        p = h.passage
        if p.doc_id == question.doc_id and any(p.start <= s and e <= p.end for s, e in question.spans):
            return h.rank
    return None


def score_question(question: OpenQuestion, scored, gold_answer=None) -> dict:
    """One row of the run: what the pipeline said (``scored``: :meth:`QA.ask_scored`'s answer and its
    candidates' features) and how it scores (SQuAD 2.0 style)."""
    answer = scored.answer
    best = answer.alternatives[0] if answer.alternatives else None
    candidate = best.text if best else ""
    answerable = bool(question.answers)
    said = "" if answer.abstained else answer.text
    if answerable:
        em, f1 = (best_over_golds(m, said, question.answers) if said else 0.0 for m in (exact_match, f1_score))
        candidate_f1 = best_over_golds(f1_score, candidate, question.answers) if candidate else 0.0
    else:
        em = f1 = float(answer.abstained)
        candidate_f1 = 0.0
    row = {
        "id": question.id, "question": question.question, "answerable": answerable, "gold": list(question.answers),
        "answer": answer.text, "abstained": answer.abstained, "score": answer.score, "candidate": candidate,
        "em": em, "f1": f1, "candidate_right": answerable and candidate_f1 >= RIGHT_F1,
        "rank": _hit_rank(question, answer.hits) if answerable else None,
        "ms": answer.timings.get("total_ms"),
        "citation": answer.citations[0].doc_id if answer.citations else None,
        "features": scored.features[0] if scored.features else {},
        "candidates": candidate_rows(scored),
    }
    if gold_answer is not None and answerable:
        gold_best = gold_answer.alternatives[0].text if gold_answer.alternatives else ""
        row["gold_passage_f1"] = best_over_golds(f1_score, gold_best, question.answers) if gold_best else 0.0
    return row


def summarize(rows: Sequence[dict]) -> dict:
    """SQuAD 2.0-style EM/F1 (all, HasAns, NoAns), refusals, retrieval hits, the selective measures."""
    has = [r for r in rows if r["answerable"]]
    no = [r for r in rows if not r["answerable"]]
    out = {
        "questions": len(rows), "answerable": len(has), "unanswerable": len(no),
        "exact": mean_of(r["em"] for r in rows), "f1": mean_of(r["f1"] for r in rows),
        "HasAns_exact": mean_of(r["em"] for r in has), "HasAns_f1": mean_of(r["f1"] for r in has),
        "NoAns_refused": mean_of(r["abstained"] for r in no),
        "answerable_refused": mean_of(r["abstained"] for r in has),
        # F1 if the threshold were 0 (always answer the best candidate): the reader and retrieval alone.
        "HasAns_f1_always_answer": mean_of(best_over_golds(f1_score, r["candidate"], r["gold"]) if r["candidate"] else 0.0
                                           for r in has),
        **{f"hit@{k}": mean_of(r["rank"] is not None and r["rank"] <= k for r in has) for k in HIT_KS},
        "ms_p50": percentile([r["ms"] for r in rows if r["ms"] is not None], 50) if rows else None,
    }
    if any("gold_passage_f1" in r for r in has):
        out["gold_passage_f1"] = mean_of(r.get("gold_passage_f1", 0.0) for r in has)
    out["selective"] = selective.summary([r["score"] for r in rows], [r["candidate_right"] for r in rows])
    out["risk_coverage"] = [(p.coverage, p.precision) for p in
                            selective.risk_coverage([r["score"] for r in rows], [r["candidate_right"] for r in rows])]
    return out


def evaluate_open_corpus(
    squad_files: Sequence[str | Path] | str | Path,
    work_dir: str | Path,
    load_qa: Callable[[Path], object] | None = None,
    top_k: int | None = None,
    limit: int | None = None,
    gold_passage: bool = False,
    show_progress: bool = False,
) -> tuple[dict, list[dict]]:
    """Write the corpus under ``work_dir/docs``, index it in ``work_dir/index``, ask every question.

    Args:
        squad_files: one or more SQuAD-format JSON files (their articles make one corpus).
        work_dir: where the documents and the index go (rewritten by later runs, nothing else touched).
        load_qa: builds the pipeline from the index folder (default ``QA.load(index)``: the packaged
            reader and its calibration).
        top_k: passages retrieved per question (``None``: the pipeline's own, ``qa.top_k``).
        limit: ask only the first ``limit`` questions (the corpus still holds every article).
        gold_passage: also read each answerable question's gold paragraph alone (the reader's ceiling).

    Returns:
        ``(metrics, rows)``: :func:`summarize`'s metrics and one row per question.
    """
    from tqdm.auto import tqdm

    from qa.stores.local.build import build_index
    from qa.types import Hit, Passage

    if isinstance(squad_files, (str, Path)):
        squad_files = [squad_files]
    work_dir = Path(work_dir)
    questions = write_corpus(squad_files, work_dir / "docs")[:limit]
    if not questions:
        raise ValueError("The SQuAD file(s) hold no questions.")
    t0 = time.perf_counter()
    stats = build_index(work_dir / "docs", work_dir / "index", show_progress=show_progress)
    build_s = time.perf_counter() - t0
    if load_qa is None:
        from qa.answering.pipeline import QA

        def load_qa(index_dir: Path):
            return QA.load(index_dir)

    qa = load_qa(work_dir / "index")
    top_k = reading_depth(qa, top_k)
    rows = []
    for q in tqdm(questions, desc="open corpus", unit="q", disable=not show_progress):
        scored = qa.ask_scored(q.question, top_k=top_k)
        gold = None
        if gold_passage and q.answers:
            passage = Passage(f"{q.doc_id}:gold", q.doc_id, q.context_start, q.context_start + len(q.context), q.context)
            gold = qa.answer_from_hits(q.question, [Hit(passage, 1.0, 1)], threshold=0.0)
        rows.append(score_question(q, scored, gold))
    metrics = summarize(rows)
    metrics.update(files=[str(f) for f in squad_files], documents=stats.documents, passages=stats.passages,
                   index_seconds=round(build_s, 1), top_k=top_k, threshold=getattr(qa, "threshold", None),
                   reader=getattr(qa, "reader_name", None),
                   cascade=getattr(qa, "cascade", {}))
    return metrics, rows
