"""SQuAD-format files: read them, split them by article, and turn their articles into a folder of documents.

Training (:mod:`qa.training`) reads examples from these files; the evaluation (:mod:`qa.evaluation`)
reads them too, and asks their questions over a corpus made of their articles. Both take them from here.

Example:
    >>> examples = dedupe(load_squad("squad-v1.1-dev.json"))
    >>> train, validation = split_by_article(examples, fraction=0.2)
    >>> questions = write_corpus(["squad-v2.0-dev.json"], "runs/open/docs")
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from qa.errors import InvalidInput, MissingPath, UnsafeDestination
from qa.text import normalize_answer

logger = logging.getLogger(__name__)

CORPUS_MARKER = ".qa-open-corpus"  # names the folders write_corpus writes, so it only ever replaces its own
_WithId = TypeVar("_WithId")


@dataclass(frozen=True)
class SquadExample:
    """One question over one context, as read from a SQuAD-format file."""

    id: str
    title: str  # the split unit: the article title, or title#paragraph for single-article files
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]  # (text, character start); empty when unanswerable
    source: str

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def load_squad(path: str | Path) -> list[SquadExample]:
    """Read a SQuAD v1.1/v2.0 JSON file into examples.

    Raises:
        MissingPath: the file does not exist.
        InvalidInput: the file is not SQuAD-format JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"No SQuAD file at {path}: check the --data path")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        articles = raw["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InvalidInput(f"{path} is not SQuAD-format JSON (expected a top-level 'data' list): {err}") from err
    examples = []
    # The split unit is the article; a file that is one "article" of many contexts (SQuADShifts
    # Reddit) is split by context instead, or it would land whole on one side.
    by_context = len(articles) == 1 and len(articles[0]["paragraphs"]) > 1
    for a_idx, article in enumerate(articles):
        title = article.get("title") or f"{path.stem}#{a_idx}"
        for p_idx, paragraph in enumerate(article["paragraphs"]):
            unit = f"{title}#{p_idx}" if by_context else title
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = () if impossible else tuple((a["text"], int(a["answer_start"])) for a in qa["answers"])
                examples.append(
                    SquadExample(str(qa["id"]), unit, context, qa["question"].strip(), answers, path.name)
                )
    return examples


def is_holdout(title: str, fraction: float) -> bool:
    """Deterministic article-level split: the same article always lands on the same side."""
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF < fraction


def split_by_article(
    examples: Sequence[SquadExample], fraction: float
) -> tuple[list[SquadExample], list[SquadExample]]:
    """Split into (train, validation) by article title, never by question."""
    train, val = [], []
    for ex in examples:
        (val if is_holdout(ex.title, fraction) else train).append(ex)
    return train, val


def dedupe(examples: Iterable[_WithId]) -> list[_WithId]:
    """Drop repeated question ids, the first kept (SQuAD 2.0 dev repeats v1.1 dev's answerable questions)."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        if ex.id not in seen:
            seen.add(ex.id)
            out.append(ex)
    return out


def question_ids(path: str | Path) -> set[str]:
    """Every question id of a SQuAD-format file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    return {str(q["id"]) for a in data for p in a["paragraphs"] for q in p["qas"]}


@dataclass(frozen=True)
class OpenQuestion:
    """A question of the file, placed in the corpus it was turned into."""

    id: str
    question: str
    doc_id: str
    answers: tuple[str, ...]  # gold texts that normalise to something; empty when unanswerable
    spans: tuple[tuple[int, int], ...]  # (start, end) of each gold answer in the document's text
    context: str  # the gold paragraph, for the gold-passage reading
    context_start: int  # its offset in the document


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:60] or "article"


def read_squad_like(path: str | Path) -> dict:
    """A SQuAD-format file as its JSON, or a DPR-style file (a list of ``{question, answers, ctxs}``,
    as SleepQA ships) turned into one: articles by passage title, each gold passage a paragraph, each
    answer placed at its first occurrence in its passage (questions whose answer is not found are left out).

    Raises:
        InvalidInput: neither format.
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(raw, dict) and isinstance(raw.get("data"), list):
        return raw
    if not (isinstance(raw, list) and raw and all(isinstance(r, dict) and "ctxs" in r for r in raw)):
        raise InvalidInput(f"{path} is neither SQuAD-format JSON (a 'data' list) nor DPR-style (a list with 'ctxs').")
    articles: dict[str, dict[str, dict]] = {}
    dropped = 0
    for n, row in enumerate(raw):
        ctx = row["ctxs"][0]
        paragraphs = articles.setdefault(ctx.get("title") or "untitled", {})
        paragraph = paragraphs.setdefault(ctx["text"], {"context": ctx["text"], "qas": []})
        answers = [{"text": a, "answer_start": ctx["text"].find(a)} for a in row["answers"] if a in ctx["text"]]
        if not answers:
            dropped += 1
            continue
        paragraph["qas"].append({"id": str(row.get("id", n)), "question": row["question"], "answers": answers})
    if dropped:
        logger.info("%s: %d question(s) whose answer is not in their passage left out", path, dropped)
    return {"version": "dpr", "data": [{"title": title, "paragraphs": list(paras.values())}
                                        for title, paras in articles.items()]}


def write_corpus(squad_files: Sequence[str | Path], folder: str | Path) -> list[OpenQuestion]:
    """Turn SQuAD-format files into a folder of ``.txt`` documents, one per article.

    Each document is the article's title, a blank line, then its paragraphs separated by blank
    lines. The folder must be new, empty, or one this function wrote before (it is then rewritten).

    Raises:
        UnsafeDestination: ``folder`` holds files this function did not write.
    """
    folder = Path(folder)
    if folder.exists():
        entries = [p for p in folder.iterdir()]
        if entries and not (folder / CORPUS_MARKER).is_file():
            raise UnsafeDestination(f"{folder} is not empty and was not written by qa eval: pick a new folder.")
        written = set(json.loads((folder / CORPUS_MARKER).read_text(encoding="utf-8"))) if entries else set()
        for p in entries:
            if p.name in written:
                p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    questions: list[OpenQuestion] = []
    names: list[str] = []
    for file_no, path in enumerate(squad_files):
        raw = read_squad_like(path)
        for a_no, article in enumerate(raw["data"]):
            title = str(article.get("title") or f"{Path(path).stem} {a_no}").replace("_", " ")
            doc_id = f"{file_no:02d}{a_no:04d}_{_slug(title)}"
            parts, offset = [title], len(title) + 2
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for q in paragraph["qas"]:
                    golds = [] if q.get("is_impossible") else [a for a in q["answers"] if normalize_answer(a["text"])]
                    spans = tuple((offset + int(a["answer_start"]), offset + int(a["answer_start"]) + len(a["text"]))
                                  for a in golds)
                    questions.append(OpenQuestion(str(q["id"]), q["question"].strip(), doc_id,
                                                  tuple(a["text"] for a in golds), spans, context, offset))
                parts.append(context)
                offset += len(context) + 2
            name = f"{doc_id}.txt"
            (folder / name).write_text("\n\n".join(parts), encoding="utf-8", newline="\n")
            names.append(name)
    (folder / CORPUS_MARKER).write_text(json.dumps(names), encoding="utf-8")
    return dedupe(questions)  # SQuAD 2.0 dev repeats question ids
