"""Side by side with Haystack 2.x's ExtractiveReader, on the same weights and the same retrieved passages.

Three halves, so that nothing of Haystack is ever imported into the product's environment:

- ``prepare`` (the product's venv): retrieve each question's top 5 passages with the product's own
  retriever and write one JSON line per question: its gold answers, the passages, the product's answer
  (text, score, abstained, best candidate) and how long the product's reader took on those passages.
- ``haystack`` (a venv of its own, made by ``setup``): Haystack's ``ExtractiveReader`` loads the product's
  reader folder and reads the same passages; it writes its answers, their scores and its no-answer score.
  This half imports only the standard library and Haystack.
- ``score`` (the product's venv): SQuAD 2.0 EM/F1 for both, answerable F1 when always answering, and
  Haystack "at matched refusal": its threshold on the best span's score chosen so that it refuses as many
  unanswerable questions as the product did. Prints a table.

The product answers or abstains by its calibrated P(right) (the reader's ``calibration.json``). Haystack
answers as shipped when its best span outscores its no-answer (``prod(1 - score)`` over its top answers);
at matched refusal it answers when its best span scores at least the threshold. Both readers run the
same windows (384 tokens, stride 128, from the reader's ``reader_config.json``), in the same torch and
transformers versions, on the same CPU threads; reading time is the reader call alone, warm.

Example (from the repository root; ``runs/`` is git-ignored):
    python -m benchmarks.haystack_compare setup --venv /tmp/hayvenv
    python -m benchmarks.haystack_compare prepare --questions eval/questions.jsonl --index embeddings \\
        --out runs/haystack/qset.jsonl
    /tmp/hayvenv/bin/python benchmarks/haystack_compare.py haystack runs/haystack/qset.jsonl \\
        runs/haystack/qset.haystack.jsonl
    python -m benchmarks.haystack_compare score runs/haystack/qset.jsonl runs/haystack/qset.haystack.jsonl

    python -m benchmarks.haystack_compare prepare --squad /tmp/calsets/test_v2held.json \\
        --work runs/haystack/squad --out runs/haystack/squad.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

logger = logging.getLogger(__name__)

TOP_K = 5  # passages per question, and answers kept per reader
HAYSTACK_REQUIREMENT = "haystack-ai==2.31.*"
TORCH_REQUIREMENT = "torch==2.13.0"  # first, on its own: a local CPU wheel (any other version pulls CUDA)
READER_DIR = Path(__file__).resolve().parents[1] / "qa" / "models" / "reader"


# --- shared ----------------------------------------------------------------------------------------------

def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write ``rows`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _progress(items, show: bool, desc: str):
    if not show:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the Haystack venv has tqdm (a Haystack dependency), but be plain without it
        return items
    return tqdm(items, desc=desc, unit="q")


# --- setup (any python) ----------------------------------------------------------------------------------

def setup(venv: Path, transformers_version: str | None) -> None:
    """Create ``venv`` with torch first, then Haystack, accelerate and the product's transformers version."""
    if not (venv / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [TORCH_REQUIREMENT], check=True)
    transformers = f"transformers=={transformers_version}" if transformers_version else "transformers"
    subprocess.run(pip + [HAYSTACK_REQUIREMENT, "accelerate", transformers], check=True)


def _product_transformers_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return None


# --- prepare (the product's venv) ------------------------------------------------------------------------

def prepare(questions: Sequence[tuple[str, str, tuple[str, ...], str]], index_dir: Path, out: Path,
            top_k: int = TOP_K, show_progress: bool = False) -> int:
    """Ask each ``(id, question, gold answers, kind)`` through the product and write the JSONL file.

    Returns:
        The number of questions written.
    """
    from qa.answering.pipeline import QA

    qa = QA.load(index_dir)
    rows = []
    for qid, question, golds, kind in _progress(questions, show_progress, "product"):
        answer = qa.ask(question, top_k=top_k)
        passages = [h.passage for h in answer.hits]
        # The reader alone on the same passages, timed (warm: ask() above has just run it).
        t0 = time.perf_counter()
        qa.reader.read(answer.question, passages)
        read_ms = (time.perf_counter() - t0) * 1000
        best = answer.alternatives[0] if answer.alternatives else None
        rows.append({
            "id": qid, "question": answer.question, "answers": list(golds), "answerable": bool(golds),
            "kind": kind, "passages": [{"id": p.id, "text": p.text} for p in passages],
            "ours": {"answer": answer.text, "score": answer.score, "abstained": answer.abstained,
                     "candidate": best.text if best else "", "candidate_score": best.score if best else 0.0,
                     "read_ms": read_ms},
        })
    write_jsonl(out, rows)
    return len(rows)


def question_set(path: Path) -> list[tuple[str, str, tuple[str, ...], str]]:
    from qa.evaluation.runner import load_questions

    return [(q.id, q.question, tuple(q.answers), q.kind) for q in load_questions(path)]


def squad_corpus(files: Sequence[Path], work: Path, show_progress: bool) -> tuple[list, Path]:
    """Turn SQuAD files into ``work/docs`` (one document per article), index it in ``work/index``."""
    from qa.squad import write_corpus
    from qa.stores.local.build import build_index

    questions = write_corpus(files, work / "docs")
    build_index(work / "docs", work / "index", show_progress=show_progress)
    kinds = [(q.id, q.question, tuple(q.answers), "answerable" if q.answers else "unanswerable") for q in questions]
    return kinds, work / "index"


# --- haystack (its own venv: standard library and Haystack only) -----------------------------------------

def run_haystack(rows: Sequence[dict], model: Path, top_k: int = TOP_K, show_progress: bool = False) -> list[dict]:
    """Haystack's ExtractiveReader over each row's passages: its answers (best first) and no-answer score."""
    import torch
    from haystack import Document
    from haystack.components.readers import ExtractiveReader

    settings_file = model / "reader_config.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    # The weights are stored fp16 and transformers keeps the stored dtype: load fp32, as the product does
    # (fp16 matmuls on a CPU are several times slower and not what anyone would deploy).
    reader = ExtractiveReader(model=str(model), top_k=top_k, no_answer=True,
                              max_seq_length=int(settings.get("max_length", 384)),
                              stride=int(settings.get("stride", 128)), model_kwargs={"dtype": torch.float32})
    reader.warm_up()
    if rows:  # one untimed read, so the first timed one is warm like the rest
        reader.run(query=rows[0]["question"], documents=[Document(content=p["text"]) for p in rows[0]["passages"]])
    out = []
    for row in _progress(rows, show_progress, "haystack"):
        documents = [Document(id=p["id"], content=p["text"]) for p in row["passages"]]
        t0 = time.perf_counter()
        answers = reader.run(query=row["question"], documents=documents)["answers"] if documents else []
        ms = (time.perf_counter() - t0) * 1000
        spans = [{"text": a.data, "score": a.score, "passage": a.document.id,
                  "start": a.document_offset.start, "end": a.document_offset.end} for a in answers if a.data is not None]
        no_answer = next((a.score for a in answers if a.data is None), None)
        out.append({"id": row["id"], "answers": spans, "no_answer_score": no_answer, "read_ms": ms})
    return out


# --- score (pure arithmetic; the product's metrics) ------------------------------------------------------

def matched_threshold(scores: Sequence[float], refusals: int) -> float:
    """The threshold ``t`` ("refuse when score < t") that refuses ``refusals`` of these ``scores``.

    Candidates are each distinct score (refusing every score below it) and the next float above the
    highest (refusing all). Ties can make the exact count unreachable: then the candidate whose count
    is nearest wins, the lower threshold when two are as near.

    Raises:
        ValueError: ``refusals`` is not between 0 and ``len(scores)``.
    """
    if not 0 <= refusals <= len(scores):
        raise ValueError(f"refusals must be between 0 and {len(scores)}, got {refusals}")
    if not scores:
        return 0.0
    ordered = sorted(scores)
    candidates = sorted(set(ordered)) + [math.nextafter(ordered[-1], math.inf)]
    best, best_gap = candidates[0], math.inf
    for t in candidates:
        gap = abs(sum(s < t for s in ordered) - refusals)
        if gap < best_gap:
            best, best_gap = t, gap
    return best


def haystack_said(row: dict, threshold: float | None) -> str | None:
    """What Haystack answers for one of its rows, ``None`` for a refusal.

    ``threshold`` ``None``: as shipped, the best span unless the no-answer outscores it; a number: the best
    span when its score is at least ``threshold``.
    """
    if not row["answers"]:
        return None
    best = row["answers"][0]
    if threshold is None:
        no_answer = row.get("no_answer_score")
        return None if no_answer is not None and no_answer > best["score"] else best["text"]
    return best["text"] if best["score"] >= threshold else None


def measure(golds: Sequence[Sequence[str]], said: Sequence[str | None], candidates: Sequence[str]) -> dict:
    """SQuAD 2.0 EM/F1 of one system over the questions (``golds`` empty: unanswerable; ``said`` ``None``:
    refused), answerable F1, refusals, and answerable F1 had it always answered its best candidate."""
    from qa.evaluation.metrics import best_over_golds, exact_match, f1_score

    if not (len(golds) == len(said) == len(candidates)) or not golds:
        raise ValueError("golds, said and candidates must be as long as each other and not empty")
    # A refusal is the empty answer: right (1) on an unanswerable question, 0 on an answerable one.
    em = [best_over_golds(exact_match, s or "", g) for g, s in zip(golds, said)]
    f1 = [best_over_golds(f1_score, s or "", g) for g, s in zip(golds, said)]
    has = [i for i, g in enumerate(golds) if g]
    no = [i for i, g in enumerate(golds) if not g]
    mean = lambda values: sum(values) / len(values) if values else float("nan")  # noqa: E731
    return {
        "questions": len(golds), "answerable": len(has), "unanswerable": len(no),
        "exact": mean(em), "f1": mean(f1), "HasAns_f1": mean([f1[i] for i in has]),
        "NoAns_refused": sum(said[i] is None for i in no), "HasAns_refused": sum(said[i] is None for i in has),
        "HasAns_f1_always_answer": mean([best_over_golds(f1_score, candidates[i], golds[i])
                                         if candidates[i] else 0.0 for i in has]),
    }


def compare(ours: Sequence[dict], theirs: Sequence[dict]) -> dict:
    """The three columns: the product, Haystack as shipped, Haystack at the product's refusal count."""
    from qa.evaluation.metrics import percentile

    by_id = {r["id"]: r for r in theirs}
    missing = [r["id"] for r in ours if r["id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no Haystack row (first: {missing[0]!r}): "
                         "run the haystack half on this very prepare file")
    theirs = [by_id[r["id"]] for r in ours]
    golds = [r["answers"] for r in ours]
    our_said = [None if r["ours"]["abstained"] else r["ours"]["answer"] for r in ours]
    their_candidates = [t["answers"][0]["text"] if t["answers"] else "" for t in theirs]
    refused = sum(s is None for g, s in zip(golds, our_said) if not g)
    best_scores = [t["answers"][0]["score"] if t["answers"] else 0.0 for t in theirs]
    threshold = matched_threshold([s for g, s in zip(golds, best_scores) if not g], refused)
    columns = {
        "ours": measure(golds, our_said, [r["ours"]["candidate"] for r in ours]),
        "haystack": measure(golds, [haystack_said(t, None) for t in theirs], their_candidates),
        "haystack_matched": measure(golds, [haystack_said(t, threshold) for t in theirs], their_candidates),
    }
    columns["ours"]["read_ms_p50"] = percentile([r["ours"]["read_ms"] for r in ours], 50)
    columns["haystack"]["read_ms_p50"] = columns["haystack_matched"]["read_ms_p50"] = \
        percentile([t["read_ms"] for t in theirs], 50)
    columns["haystack_matched"]["threshold"] = threshold
    return columns


def table(columns: dict, title: str) -> str:
    """A Markdown table of :func:`compare`'s columns."""
    o, h, m = columns["ours"], columns["haystack"], columns["haystack_matched"]
    n_no, n_has = o["unanswerable"], o["answerable"]
    lines = [
        f"{title}: {o['questions']} questions ({n_has} answerable, {n_no} unanswerable), top {TOP_K} passages",
        "",
        f"| | ours (calibrated) | Haystack (no-answer as shipped) | Haystack (matched refusal, t={m['threshold']:.3f}) |",
        "|---|---:|---:|---:|",
    ]

    def row(name: str, fmt) -> None:
        lines.append(f"| {name} | " + " | ".join(fmt(c) for c in (o, h, m)) + " |")

    row("F1, all (SQuAD 2.0)", lambda c: f"{c['f1']:.3f}")
    row("EM, all (SQuAD 2.0)", lambda c: f"{c['exact']:.3f}")
    row("answerable F1 (refusal = 0)", lambda c: f"{c['HasAns_f1']:.3f}")
    row("unanswerable refused", lambda c: f"{c['NoAns_refused']} of {n_no}")
    row("answerable refused", lambda c: f"{c['HasAns_refused']} of {n_has}")
    row("answerable F1, always answering", lambda c: f"{c['HasAns_f1_always_answer']:.3f}")
    row("read p50 (warm, ms)", lambda c: f"{c['read_ms_p50']:.0f}")
    return "\n".join(lines)


# --- entry point -----------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="create the Haystack venv (torch first, then Haystack)")
    p.add_argument("--venv", type=Path, default=Path("/tmp/hayvenv"))
    p = sub.add_parser("prepare", help="product venv: retrieve, answer, write the JSONL file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--questions", type=Path, help="a question set (eval/questions.jsonl), asked over --index")
    src.add_argument("--squad", type=Path, nargs="+", help="SQuAD file(s): an open corpus built in --work")
    p.add_argument("--index", type=Path, default=Path("embeddings"))
    p.add_argument("--work", type=Path, default=Path("runs/haystack/squad"), help="documents and index for --squad")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("haystack", help="Haystack venv: read the prepared passages with ExtractiveReader")
    p.add_argument("prepared", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--model", type=Path, default=READER_DIR, help="the reader folder (default: the product's)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("score", help="product venv: score both, print the table")
    p.add_argument("prepared", type=Path)
    p.add_argument("haystack", type=Path)
    p.add_argument("--title", default=None)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")

    if args.command == "setup":
        setup(args.venv, _product_transformers_version())
        print(f"ready: {args.venv}/bin/python benchmarks/haystack_compare.py haystack PREPARED OUT")
    elif args.command == "prepare":
        if args.limit is not None and args.limit <= 0:
            parser.error("--limit must be greater than 0")
        if args.questions:
            questions, index = question_set(args.questions), args.index
        else:
            questions, index = squad_corpus(args.squad, args.work, not args.no_progress)
        n = prepare(questions[: args.limit], index, args.out, show_progress=not args.no_progress)
        print(f"{n} questions -> {args.out}")
    elif args.command == "haystack":
        rows = read_jsonl(args.prepared)
        write_jsonl(args.out, run_haystack(rows, args.model, show_progress=not args.no_progress))
        print(f"{len(rows)} questions -> {args.out}")
    else:
        columns = compare(read_jsonl(args.prepared), read_jsonl(args.haystack))
        print(table(columns, args.title or args.prepared.stem))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(columns, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
