"""Conversations: each turn asked with the dialogue so far and without it, scored per turn.

``eval/conversations.jsonl`` holds one dialogue a line: ``{"id", "turns": [{"question", "answers",
"doc_id"}, ...]}``, gold answers verbatim in the document ``doc_id`` (``answers`` ``[]`` and ``doc_id``
``null`` for a turn the documents can't answer). Every turn is asked twice through the same
:class:`~qa.answering.pipeline.QA`: alone, and in context (``history`` = the earlier turns' answers
from the in-context run, as the chat passes them). Per turn number and over all follow-up turns:

- hit@k: a passage the reader was given is from the gold document and holds a gold answer;
- F1 (answerable turns; a refusal scores 0) and overall F1 (SQuAD 2.0: a refusal of an unanswerable
  turn scores 1), and the share of unanswerable turns refused.

Example:
    >>> result = evaluate_conversations(QA.load("embeddings"), load_conversations("eval/conversations.jsonl"))
    >>> result.metrics["follow_ups"]["in_context"]["hit@k"]
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from qa.errors import InvalidInput, MissingPath
from qa.evaluation.common import Record, format_number, mean_of, reading_depth
from qa.evaluation.metrics import best_over_golds, exact_match, f1_score
from qa.evaluation.runner import contains_answer
from qa.jsonl import iter_jsonl, write_jsonl
from qa.retrieval import DEFAULT_MODE
from qa.types import Answer

logger = logging.getLogger(__name__)

DEFAULT_CONVERSATIONS = "eval/conversations.jsonl"
RUNS = ("alone", "in_context")


@dataclass(frozen=True)
class Turn:
    """One turn of a dialogue; ``answers`` empty and ``doc_id`` ``None`` when the documents can't answer it."""

    question: str
    answers: tuple[str, ...]
    doc_id: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]


@dataclass
class ConversationsResult:
    """Per-turn records and the metrics by turn number."""

    records: list[Record]
    metrics: dict


def load_conversations(path: str | Path) -> list[Conversation]:
    """Read a conversation set, checking its schema.

    Raises:
        MissingPath: no file at ``path``.
        InvalidInput: a line breaks the schema (the message names it), a repeated id, or no dialogue.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"No conversation set at {path} (pass --conversations FILE).")
    out, seen = [], set()
    for n, row in iter_jsonl(path):
        where = f"{path}, line {n}"
        if not isinstance(row, dict) or set(row) != {"id", "turns"}:
            raise InvalidInput(f"{where}: expected exactly the keys ['id', 'turns']")
        if not isinstance(row["id"], str) or not row["id"] or row["id"] in seen:
            raise InvalidInput(f"{where}: 'id' must be a non-empty string used once, got {row['id']!r}")
        if not isinstance(row["turns"], list) or not row["turns"]:
            raise InvalidInput(f"{where}: 'turns' must be a non-empty list")
        seen.add(row["id"])
        out.append(Conversation(row["id"], tuple(_turn(t, f"{where}, turn {k}") for k, t in enumerate(row["turns"], 1))))
    if not out:
        raise InvalidInput(f"{path} holds no conversations.")
    return out


def _turn(row: Any, where: str) -> Turn:
    if not isinstance(row, dict) or set(row) != {"question", "answers", "doc_id"}:
        raise InvalidInput(f"{where}: expected exactly the keys ['answers', 'doc_id', 'question']")
    if not isinstance(row["question"], str) or not row["question"].strip():
        raise InvalidInput(f"{where}: 'question' must be a non-empty string")
    answers = row["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise InvalidInput(f"{where}: 'answers' must be a list of non-empty strings")
    if (row["doc_id"] is None) != (not answers) or not (row["doc_id"] is None or isinstance(row["doc_id"], str)):
        raise InvalidInput(f"{where}: a turn the documents can't answer has answers [] and doc_id null; "
                           "any other names its document")
    return Turn(row["question"].strip(), tuple(answers), row["doc_id"])


def evaluate_conversations(
    qa, conversations: Sequence[Conversation], k: int | None = None, mode: str = DEFAULT_MODE, threshold: float | None = None,
    show_progress: bool = False,
) -> ConversationsResult:
    """Ask every turn alone and in context through ``qa`` and score both.

    Args:
        qa: the pipeline (``.ask(question, top_k, mode, threshold, history)``, ``.documents``, ``.threshold``).
        conversations: see :func:`load_conversations`.
        k: passages given to the reader (hit@k is over these); ``None``: ``qa.top_k``.
        mode: retrieval mode.
        threshold: answer threshold; ``None`` uses ``qa.threshold``.

    Raises:
        InvalidInput: no conversations, ``k < 1``, or a turn names a document the index lacks.
    """
    from tqdm.auto import tqdm

    if not conversations:
        raise InvalidInput("The conversation set is empty.")
    k = reading_depth(qa, k)
    if k < 1:
        raise InvalidInput(f"-k must be at least 1, got {k}.")
    threshold = qa.threshold if threshold is None else threshold
    unknown = sorted({t.doc_id for c in conversations for t in c.turns if t.doc_id} - set(qa.documents))
    if unknown:
        raise InvalidInput(f"Conversations refer to documents the index lacks: {', '.join(unknown)}. "
                           "Evaluate on an index of the documents they were written for.")
    records: list[Record] = []
    for conversation in tqdm(conversations, desc="conversations", unit="dialogue", disable=not show_progress):
        earlier: list[Answer] = []
        for n, turn in enumerate(conversation.turns, start=1):
            alone = qa.ask(turn.question, top_k=k, mode=mode, threshold=threshold)
            in_context = qa.ask(turn.question, top_k=k, mode=mode, threshold=threshold, history=list(earlier))
            earlier.append(in_context)
            records.append({
                "id": f"{conversation.id}-t{n}", "conversation": conversation.id, "turn": n,
                "question": turn.question, "answers": list(turn.answers), "doc_id": turn.doc_id,
                "alone": score_answer(alone, turn), "in_context": score_answer(in_context, turn),
            })
    metrics = {
        "all": summarize_turns(records),
        "follow_ups": summarize_turns([r for r in records if r["turn"] > 1]),
        "by_turn": {str(n): summarize_turns([r for r in records if r["turn"] == n])
                    for n in sorted({r["turn"] for r in records})},
        "config": {"k": k, "mode": mode, "threshold": threshold, "conversations": len(conversations),
                   "turns": len(records)},
    }
    return ConversationsResult(records, metrics)


def score_answer(answer: Answer, turn: Turn) -> dict:
    """One run's answer to one turn, scored: F1 and EM against the gold answers (a refusal of an
    unanswerable turn scores 1), and hit@k (``None`` for an unanswerable turn)."""
    prediction = answer.text or ""
    golds = list(turn.answers)
    hit = None
    if golds:
        hit = any(h.passage.doc_id == turn.doc_id and any(contains_answer(h.passage.text, a) for a in golds)
                  for h in answer.hits)
    return {"answer": answer.text, "abstained": answer.abstained, "score": answer.score, "searched": answer.searched,
            "f1": best_over_golds(f1_score, prediction, golds), "em": best_over_golds(exact_match, prediction, golds),
            "hit": hit, "doc_ids": [h.passage.doc_id for h in answer.hits]}


def summarize_turns(records: Sequence[Record]) -> dict:
    """For each run (alone, in context): hit@k and F1 over answerable turns, overall F1 over all, the
    share of unanswerable turns refused; and how many turns were searched with added context."""
    answerable = [r for r in records if r["answers"]]
    unanswerable = [r for r in records if not r["answers"]]
    out: dict = {"turns": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable),
                 "expanded": sum(bool(r["in_context"]["searched"]) for r in records)}
    for run in RUNS:
        out[run] = {
            "hit@k": mean_of(float(r[run]["hit"]) for r in answerable),
            "f1": mean_of(r[run]["f1"] for r in answerable),
            "overall_f1": mean_of(r[run]["f1"] for r in records),
            "unanswerable_refused": mean_of(float(r[run]["abstained"]) for r in unanswerable),
        }
    return out


def format_conversation_table(metrics: dict) -> str:
    """Text table: per turn number and over follow-up turns, each figure alone -> in context."""
    columns = [(f"turn {n}", m) for n, m in metrics["by_turn"].items()]
    columns += [("follow-ups", metrics["follow_ups"]), ("all", metrics["all"])]
    lines = ["".ljust(22) + "".join(name.rjust(16) for name, _ in columns)]
    lines.append("turns".ljust(22) + "".join(str(m["turns"]).rjust(16) for _, m in columns))
    lines.append("searched with context".ljust(22) + "".join(str(m["expanded"]).rjust(16) for _, m in columns))
    for key, label in (("hit@k", f"hit@{metrics['config']['k']}"), ("f1", "F1 (answerable)"),
                       ("overall_f1", "overall F1"), ("unanswerable_refused", "unanswerable refused")):
        cells = [f"{format_number(m['alone'][key])} -> {format_number(m['in_context'][key])}" for _, m in columns]
        lines.append(label.ljust(22) + "".join(c.rjust(16) for c in cells))
    lines.append("(each cell: the question alone -> in context)")
    return "\n".join(lines)


def render_conversation_report(metrics: dict, records: Sequence[Record], title: str = "qa conversations") -> str:
    """A self-contained HTML report: the per-turn table, then every turn whose result context changed."""
    from qa.evaluation.report import _CSS, _cell

    esc = html.escape
    columns = [(f"turn {n}", m) for n, m in metrics["by_turn"].items()]
    columns += [("follow-up turns", metrics["follow_ups"]), ("all turns", metrics["all"])]
    head = "<tr><th></th>" + "".join(f"<th colspan=2>{esc(name)}</th>" for name, _ in columns) + "</tr>"
    head += "<tr><th></th>" + "<th>alone</th><th>in context</th>" * len(columns) + "</tr>"
    rows = ["<tr><th>turns (searched with context)</th>" + "".join(
        f"<td class=num colspan=2>{m['turns']} ({m['expanded']})</td>" for _, m in columns) + "</tr>"]
    for key, label in (("hit@k", f"hit@{metrics['config']['k']}"), ("f1", "F1, answerable turns"),
                       ("overall_f1", "overall F1 (SQuAD 2.0)"), ("unanswerable_refused", "unanswerable refused")):
        rows.append(f"<tr><th>{esc(label)}</th>" + "".join(
            _cell(m["alone"][key]) + _cell(m["in_context"][key]) for _, m in columns) + "</tr>")
    changed = [r for r in records if r["alone"]["f1"] != r["in_context"]["f1"] or r["alone"]["hit"] != r["in_context"]["hit"]]
    turn_rows = []
    for r in changed:
        shown = {run: "(refused)" if r[run]["abstained"] else r[run]["answer"] for run in RUNS}
        turn_rows.append("<tr>" + "".join([
            _cell(r["id"]), _cell(r["question"]), _cell(r["in_context"]["searched"] or "(the question)"),
            _cell(" | ".join(r["answers"]) or "(none)"), _cell(shown["alone"]), _cell(r["alone"]["f1"]),
            _cell(shown["in_context"]), _cell(r["in_context"]["f1"]),
            _cell(f"{r['alone']['hit']} -> {r['in_context']['hit']}" if r["answers"] else "-"),
        ]) + "</tr>")
    changed_table = ("<table><tr><th>turn</th><th>question</th><th>searched for</th><th>gold</th><th>alone</th>"
                     "<th>F1</th><th>in context</th><th>F1</th><th>hit</th></tr>" + "".join(turn_rows) + "</table>"
                     if turn_rows else '<p class="muted">none</p>')
    config = ", ".join(f"{k}={v}" for k, v in metrics["config"].items())
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{esc(time.strftime("%Y-%m-%d %H:%M"))} &middot; {esc(config)}</p>',
        "<p>Each turn is asked twice: alone, and with the conversation so far (the earlier answers, as the chat "
        "passes them). A follow-up is searched with the earlier questions' key terms and the previous answer's "
        "document favoured; the reader always reads the question as asked.</p>",
        "<h2>Per turn</h2>", "<table>" + head + "".join(rows) + "</table>",
        f"<h2>Turns whose result the context changed ({len(changed)})</h2>", changed_table, "</body></html>",
    ])


def write_conversation_outputs(result: ConversationsResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``predictions.jsonl``, ``metrics.json`` and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": out / "predictions.jsonl", "metrics": out / "metrics.json", "report": out / "report.html"}
    write_jsonl(paths["predictions"], result.records)
    paths["metrics"].write_text(json.dumps(result.metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["report"].write_text(render_conversation_report(result.metrics, result.records), encoding="utf-8")
    return paths
