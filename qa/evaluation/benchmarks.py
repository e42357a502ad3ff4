"""Public benchmarks: the reader alone on SQuAD-format data, the retriever alone on BEIR.

``qa eval squad --data FILE`` and ``qa eval beir --data DIR`` run them (see :mod:`qa.cli.evaluate`);
``benchmarks/bench.py`` shares the BEIR helpers (:func:`load_beir`, :func:`write_beir_corpus`,
:func:`evaluate_beir`).

Example:
    >>> from qa.evaluation.benchmarks import evaluate_beir, load_beir
    >>> data = load_beir("../shared/data/beir/scifact")
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from qa.errors import InvalidInput, MissingPath, UnsafeDestination
from qa.evaluation.common import mean_of
from qa.evaluation.metrics import best_over_golds, exact_match, f1_score, ndcg_at_k, normalize_answer, percentile, recall_at_k
from qa.evaluation.thresholds import best_threshold, candidate_of
from qa.jsonl import iter_jsonl, text_lines
from qa.retrieval import DEFAULT_MODE, MODES
from qa.types import Passage

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# SQuAD: the reader alone


def evaluate_squad(
    reader, examples: Sequence, threshold: float | None = None, show_progress: bool = False
) -> tuple[dict, dict[str, str]]:
    """SQuAD EM/F1 of ``reader`` on ``examples`` (:class:`qa.training.trainer.SquadExample`), in percent.

    Each context is read as one passage (the reader cuts long ones into windows, read together).
    The prediction is the best span, or ``""`` when its score is below ``threshold`` (``None``: never
    abstain). With unanswerable questions in the set the metrics split into HasAns and NoAns, and the
    best threshold on the set is reported as in SQuAD 2.0's official script.

    Returns:
        ``(metrics, predictions)`` with predictions ``{question id: text or ""}``.
    """
    from tqdm.auto import tqdm

    if not examples:
        raise InvalidInput("No SQuAD questions to evaluate: check the --data file.")
    has_impossible = any(ex.is_impossible for ex in examples)
    first = examples[0]
    reader.read(first.question, [Passage("ctx", "ctx", 0, len(first.context), first.context)])  # warm-up: load the model
    predictions, rows = {}, []
    t0 = time.perf_counter()
    for ex in tqdm(examples, desc="squad", unit="q", disable=not show_progress):
        context = ex.context
        result = reader.read(ex.question, [Passage("ctx", "ctx", 0, len(context), context)], top_n=1)
        text, score = (result.spans[0].text, result.spans[0].score) if result.spans else ("", 0.0)
        prediction = text if threshold is None or score >= threshold else ""
        # The official script drops gold answers that normalise to nothing; none left means "no answer".
        golds = [a for a, _ in ex.answers if normalize_answer(a)]
        predictions[ex.id] = prediction
        rows.append((golds, best_over_golds(exact_match, prediction, golds), best_over_golds(f1_score, prediction, golds),
                     candidate_of(golds, text, score)))
    seconds = time.perf_counter() - t0

    def block(selected: list) -> dict:
        return {"exact": 100 * mean_of(r[1] for r in selected), "f1": 100 * mean_of(r[2] for r in selected),
                "total": len(selected)}

    has_ans = [r for r in rows if r[0]]
    metrics: dict = {}
    if has_impossible:
        metrics.update(block(rows))
        no_ans = [r for r in rows if not r[0]]
        if has_ans:
            metrics.update({f"HasAns_{key}": value for key, value in block(has_ans).items()})
        metrics.update({f"NoAns_{key}": value for key, value in block(no_ans).items()})
        best_t, best_f1 = best_threshold([r[3] for r in rows])
        metrics.update(best_f1=100 * best_f1, best_f1_thresh=best_t)
    else:
        metrics.update({f"HasAns_{key}": value for key, value in block(has_ans).items()})
    metrics.update(threshold=threshold, seconds=round(seconds, 2),
                   questions_per_second=round(len(rows) / seconds, 2) if seconds else None)
    return metrics, predictions


# --------------------------------------------------------------------------------------------
# BEIR: the retriever alone


@dataclass(frozen=True)
class BeirData:
    """A BEIR data set: ``corpus`` {doc id: (title, text)}, ``queries`` {query id: text} (only those
    with judgements), ``qrels`` {query id: {doc id: grade}}."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(data_dir: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder: ``corpus.jsonl`` (_id, title, text), ``queries.jsonl`` (_id, text), ``qrels/{split}.tsv``.

    Raises:
        MissingPath: a file is missing.
        InvalidInput: a file is malformed, or no judged query has a text.
    """
    root = Path(data_dir)
    files = {"corpus": root / "corpus.jsonl", "queries": root / "queries.jsonl", "qrels": root / "qrels" / f"{split}.tsv"}
    for name, path in files.items():
        if not path.is_file():
            raise MissingPath(f"Not a BEIR folder: {path} is missing (expected corpus.jsonl, queries.jsonl, "
                                    f"qrels/{split}.tsv under {root}).")
    corpus = {str(row["_id"]): (row.get("title") or "", row.get("text") or "") for row in _jsonl(files["corpus"])}
    all_queries = {str(row["_id"]): str(row.get("text") or "") for row in _jsonl(files["queries"])}
    qrels: dict[str, dict[str, int]] = {}
    for n, line in text_lines(files["qrels"]):
        parts = line.split("\t")
        if not line.strip() or (n == 1 and parts[0] == "query-id"):
            continue
        if len(parts) != 3 or not re.fullmatch(r"-?\d+", parts[2].strip()):
            raise InvalidInput(f"{files['qrels']}, line {n}: expected 'query-id<TAB>corpus-id<TAB>score' (an integer score)")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        logger.warning("%d judged queries have no text in queries.jsonl and are skipped, e.g. %s", len(missing), missing[0])
    queries = {qid: all_queries[qid] for qid in qrels if qid in all_queries}
    if not queries:
        raise InvalidInput(f"No judged query of {files['qrels']} has a text in {files['queries']}.")
    return BeirData(corpus, queries, {qid: qrels[qid] for qid in queries})


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for n, row in iter_jsonl(path):
        if not isinstance(row, dict) or "_id" not in row:
            raise InvalidInput(f"{path}, line {n}: expected an object with an '_id'")
        rows.append(row)
    return rows


def _file_stem(beir_id: str) -> str:
    """A safe file name for a BEIR id: the id itself when it is plain, else a hash of it."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", beir_id):
        return beir_id
    return "h" + hashlib.sha1(beir_id.encode("utf-8")).hexdigest()[:20]


WRITTEN_LIST = ".qa-written.json"  # in a corpus folder: the files write_beir_corpus wrote there


def _written_files(folder: Path) -> set[str]:
    """The names :func:`write_beir_corpus` recorded as written in ``folder`` (none without a record)."""
    record = folder / WRITTEN_LIST
    if not record.is_file():
        return set()
    return set(json.loads(record.read_text(encoding="utf-8"))["files"])


def _record_written(folder: Path, names: set[str]) -> None:
    tmp = folder / f"{WRITTEN_LIST}.tmp"
    tmp.write_text(json.dumps({"written_by": "qa.evaluation.benchmarks.write_beir_corpus", "files": sorted(names)}),
                   encoding="utf-8")
    tmp.replace(folder / WRITTEN_LIST)


def _foreign_files(folder: Path, written: set[str]) -> list[str]:
    """Files under ``folder`` (recursively) that are neither the record nor listed in it."""
    own = written | {WRITTEN_LIST, f"{WRITTEN_LIST}.tmp"}
    return sorted(rel for p in folder.rglob("*") if (p.is_file() or p.is_symlink())
                  and (rel := p.relative_to(folder).as_posix()) not in own)


def write_beir_corpus(data: BeirData, folder: str | Path) -> dict[str, str]:
    """Write each BEIR document as a text file (title, blank line, text) under ``folder``.

    ``folder`` then holds exactly this corpus: files written for an earlier corpus (listed in
    ``folder/.qa-written.json``) and not part of this one are deleted. A folder holding any other
    file is refused, and nothing in it is touched. Files whose content is unchanged are not
    rewritten, so an index build over ``folder`` stays incremental.

    Returns:
        ``{index doc id (file stem): BEIR doc id}``.

    Raises:
        UnsafeDestination: ``folder`` is a file, or holds files this function did not write.
        InvalidInput: two BEIR ids map to the same file name.
    """
    folder = Path(folder)
    ids: dict[str, str] = {}
    contents: dict[str, str] = {}
    for beir_id, (title, text) in data.corpus.items():
        stem = _file_stem(beir_id)
        if stem in ids:
            raise InvalidInput(f"BEIR ids {ids[stem]!r} and {beir_id!r} map to the same file name {stem!r}.")
        ids[stem] = beir_id
        contents[f"{stem}.txt"] = f"{title}\n\n{text}" if title else text
    if folder.exists() and not folder.is_dir():
        raise UnsafeDestination(f"{folder} is a file, not a folder: choose another output folder (--out).")
    written = _written_files(folder) if folder.is_dir() else set()
    foreign = _foreign_files(folder, written) if folder.is_dir() else []
    if foreign:
        raise UnsafeDestination(
            f"{folder} holds {len(foreign)} file(s) that qa did not write (e.g. {foreign[0]}): choose a new or "
            "empty output folder (--out); qa deletes only files it wrote itself.")
    folder.mkdir(parents=True, exist_ok=True)
    _record_written(folder, written | set(contents))  # recorded before writing, so a crash leaves no stray file
    for name, content in contents.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    stale = sorted(written - set(contents))
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    if stale:
        logger.info("removed %d document(s) of an earlier corpus from %s", len(stale), folder)
    _record_written(folder, set(contents))
    return ids


def build_beir_index(data: BeirData, out_dir: str | Path, encoder=None, show_progress: bool = False) -> dict[str, str]:
    """Write the corpus under ``out_dir/corpus`` and index it into ``out_dir/index`` with :func:`qa.build_index`.

    The benchmark so measures the product's own chunking (800/200 characters) and retrieval; a document
    of several passages ranks by its best one. A second run re-embeds nothing; a run with another data
    set replaces the corpus (see :func:`write_beir_corpus`), so the index never mixes two.

    Returns:
        ``{index doc id: BEIR doc id}``, also saved as ``out_dir/beir_ids.json``.
    """
    from qa.stores.local.build import build_index

    out = Path(out_dir)
    ids = write_beir_corpus(data, out / "corpus")
    (out / "beir_ids.json").write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
    build_index(out / "corpus", out / "index", encoder=encoder, show_progress=show_progress)
    return ids


def score_run(ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict:
    """Mean nDCG@10 and Recall@100 of ``{query id: document ids, best first}`` against ``qrels``."""
    return {"ndcg@10": mean_of(ndcg_at_k(ids, qrels[qid], 10) for qid, ids in ranked.items()),
            "recall@100": mean_of(recall_at_k(ids, qrels[qid], 100) for qid, ids in ranked.items())}


def beir_passages(retriever) -> int:
    """Passages to retrieve per query so that about 100 documents come back: 100 times the most
    passages a document has on average (rounded up), at most the whole index."""
    total = len(retriever.index.passages)
    return min(total, 100 * math.ceil(total / max(1, len(retriever.documents))))


def evaluate_beir(
    retriever,
    data: BeirData,
    modes: Sequence[str] = MODES,
    doc_ids: Mapping[str, str] | None = None,
    passages: int = 100,
    show_progress: bool = False,
) -> tuple[dict, dict[str, dict[str, list[tuple[str, float]]]]]:
    """nDCG@10 and Recall@100 of ``retriever`` on ``data``, per retrieval mode.

    Passages are mapped back to BEIR documents, each document ranked by its best (first) passage, so
    several passages of one document count once.

    Args:
        retriever: anything with ``.search(query, top_k=..., mode=...) -> list[Hit]``.
        data: from :func:`load_beir`.
        modes: retrieval modes to evaluate.
        doc_ids: ``{index doc id: BEIR doc id}`` (from :func:`build_beir_index`); identity when ``None``.
        passages: passages retrieved per query; use several times 100 when documents span many passages.
        show_progress: show a progress bar per mode.

    Returns:
        ``(metrics, runs)``: metrics ``{mode: {"ndcg@10", "recall@100", "queries", "ms_per_query_p50"}}``
        and runs ``{mode: {query id: [(BEIR doc id, score), ...] best first}}``.
    """
    from tqdm.auto import tqdm

    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InvalidInput(f"Unknown retrieval mode(s) {unknown}: use {', '.join(MODES)}.")
    metrics, runs = {}, {}
    for mode in modes:
        run, times = {}, []
        for qid, text in tqdm(data.queries.items(), desc=f"beir {mode}", unit="q", disable=not show_progress):
            t0 = time.perf_counter()
            hits = retriever.search(text, top_k=passages, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
            # Hits come best first; a document ranks by its first passage. Not by score: Milvus Lite's
            # BM25 scores are negated (best first, most negative).
            best: dict[str, float] = {}
            for h in hits:
                doc = doc_ids.get(h.passage.doc_id, h.passage.doc_id) if doc_ids else h.passage.doc_id
                best.setdefault(doc, h.score)
            ranked = list(best.items())[:100]
            run[qid] = ranked
        scores = score_run({qid: [d for d, _ in ranked] for qid, ranked in run.items()}, data.qrels)
        metrics[mode] = {**scores, "queries": len(run), "ms_per_query_p50": percentile(times, 50)}
        runs[mode] = run
    return metrics, runs


def write_trec_run(path: str | Path, run: Mapping[str, Sequence[tuple[str, float]]], tag: str) -> Path:
    """Write a run in TREC format, one line per retrieved document: ``qid Q0 docid rank score tag``."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for qid, ranked in run.items():
            for rank, (doc, score) in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")
    return path


def run_beir(
    data_dir: str | Path,
    out_dir: str | Path,
    modes: Sequence[str] = MODES,
    limit: int | None = None,
    encoder=None,
    show_progress: bool = False,
) -> dict:
    """``qa eval beir``: index a BEIR data set's corpus under ``out_dir`` and measure each mode.

    Writes ``corpus/``, ``index/``, ``beir_ids.json``, ``run.<mode>.tsv``, ``run.tsv`` (hybrid, or the
    one mode) and ``metrics.json`` into ``out_dir``.

    Args:
        data_dir: the BEIR folder (see :func:`load_beir`).
        out_dir: a new or empty folder, or one an earlier run wrote.
        modes: retrieval modes to evaluate.
        limit: only the first ``limit`` judged queries.
        encoder: the embedding encoder (default: the product's).
        show_progress: progress bars.

    Returns:
        ``{"data", "queries", "documents", "modes": {mode: metrics}}``, as saved in ``metrics.json``.

    Raises:
        UnsafeDestination: ``out_dir`` holds files an earlier run did not write.
    """
    from qa.retrieval.retriever import Retriever

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "corpus" / WRITTEN_LIST).is_file())):
        raise UnsafeDestination(f"{out} is not empty and was not written by qa eval beir: choose a new or empty "
                                "output folder (--out).")
    data = load_beir(data_dir)
    if limit:
        qids = list(data.queries)[:limit]
        data = BeirData(data.corpus, {q: data.queries[q] for q in qids}, {q: data.qrels[q] for q in qids})
    ids = build_beir_index(data, out, encoder=encoder, show_progress=show_progress)
    retriever = Retriever.load(out / "index", encoder=encoder)
    metrics, runs = evaluate_beir(retriever, data, modes, ids, passages=beir_passages(retriever),
                                  show_progress=show_progress)
    for mode, run in runs.items():
        write_trec_run(out / f"run.{mode}.tsv", run, f"qa-{mode}")
    primary = DEFAULT_MODE if DEFAULT_MODE in runs else list(runs)[0]
    write_trec_run(out / "run.tsv", runs[primary], f"qa-{primary}")
    report = {"data": str(data_dir), "queries": len(data.queries), "documents": len(data.corpus), "modes": metrics}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
