"""Multi-passage training groups: each question with the passages the product's own retriever returns for it.

The reader answers from the top passages of a search, not from one gold paragraph, so that is what it is
trained on (Clark & Gardner 2018, "Simple and Effective Multi-Paragraph Reading Comprehension"). The
training articles are written as a document folder (one document per article, as ``qa eval squad --open``
does), indexed with the product's chunking and embedder, and each question is searched (hybrid, over its
own article) for its ``top_k`` passages. An answerable question whose answer is in none of them gets the
best passage holding it in place of the last one, so every answerable group has an answer to learn.

A group is one JSON line:
``{"id", "question", "kind", "source", "passages": [text, ...], "answers": [[[start, end], ...], ...]}``
where ``answers[i]`` are the gold character spans inside ``passages[i]`` (empty for a passage without one,
and for every passage of an unanswerable question). ``kind`` is ``answerable``, ``unanswerable`` (SQuAD 2.0)
or ``swap`` (made unanswerable by :mod:`qa.training.synthetic`).

Example:
    >>> groups = retrieved_groups(train_examples, "runs/mp/work", top_k=4)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from qa.squad import SquadExample, write_corpus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassageGroup:
    """One question with the passages it is read against, and where the answer is in each."""

    id: str
    question: str
    kind: str
    source: str
    passages: tuple[str, ...]
    answers: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def is_impossible(self) -> bool:
        return not any(self.answers)

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "kind": self.kind, "source": self.source,
                "passages": list(self.passages), "answers": [[list(s) for s in a] for a in self.answers]}

    @classmethod
    def from_dict(cls, row: dict) -> "PassageGroup":
        return cls(row["id"], row["question"], row["kind"], row["source"], tuple(row["passages"]),
                   tuple(tuple((int(s), int(e)) for s, e in a) for a in row["answers"]))


def article_of(example: SquadExample) -> str:
    """The article an example's passages are searched in: its title without a by-post suffix."""
    return example.title.split("#", 1)[0] if example.source.startswith("reddit") else example.title


def write_training_squad(examples: Sequence[SquadExample], folder: Path) -> list[Path]:
    """Write ``examples`` as SQuAD 2.0 files, one per source, articles and paragraphs in first-seen order."""
    folder.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, dict[str, dict[str, list[SquadExample]]]] = {}
    for ex in examples:
        by_source.setdefault(ex.source, {}).setdefault(article_of(ex), {}).setdefault(ex.context, []).append(ex)
    paths = []
    for source, articles in by_source.items():
        data = [{"title": title, "paragraphs": [
            {"context": context, "qas": [
                {"id": e.id, "question": e.question, "is_impossible": e.is_impossible,
                 "answers": [{"text": t, "answer_start": s} for t, s in e.answers]} for e in exs]}
            for context, exs in paragraphs.items()]} for title, paragraphs in articles.items()]
        path = folder / source
        path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
        paths.append(path)
    return paths


def answer_spans(passage, spans: Sequence[tuple[int, int]], texts: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """The gold answers inside ``passage``, as character spans within it: the labelled ones (``spans``, in
    document offsets) and every other whole-word occurrence of a gold answer text longer than 2 characters
    (Clark & Gardner 2018 label all of them: SQuAD marks one occurrence, and the same words elsewhere in the
    article answer just as well; shorter answers such as "3" match too much by chance)."""
    found = {(s - passage.start, e - passage.start) for s, e in spans
             if passage.start <= s and e <= passage.end}
    for text in texts:
        if len(text) <= 2:
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(text) + r"(?!\w)", passage.text):
            found.add((m.start(), m.end()))
    return tuple(sorted(found))


def _groups_for(retriever, questions, source_of: dict[str, str], top_k: int, kind_of,
                question_text=None) -> Iterable[PassageGroup]:
    passages_of_doc: dict[str, list] = {}
    for p in retriever.index.passages:
        passages_of_doc.setdefault(p.doc_id, []).append(p)
    for q in questions:
        text = question_text(q) if question_text else q.question
        hits = [h.passage for h in retriever.search(text, top_k=top_k, doc_ids=[q.doc_id])]
        spans = () if question_text else q.spans
        texts = () if question_text else tuple(set(q.answers))
        inside = lambda p: answer_spans(p, spans, texts)  # noqa: E731
        if spans and not any(inside(p) for p in hits):
            holding = [p for p in passages_of_doc[q.doc_id] if inside(p)]
            if not holding:
                continue  # the answer is cut by every passage boundary: nothing to learn from
            hits = hits[: top_k - 1] + [holding[0]]
        yield PassageGroup(q.id, text, kind_of(q), source_of.get(q.id, ""), tuple(p.text for p in hits),
                           tuple(inside(p) for p in hits))


def retrieved_groups(
    examples: Sequence[SquadExample], workdir: str | Path, top_k: int = 4, swaps: dict[str, str] | None = None,
    selected: set[str] | None = None, show_progress: bool = True,
) -> list[PassageGroup]:
    """Search every example's article with the product's retriever and return its passage group.

    Args:
        examples: training examples (answerable and unanswerable).
        workdir: a folder of this function's (the documents and the index are written there).
        top_k: passages per question, as the product reads.
        swaps: question id -> a rewritten, unanswerable question (see :mod:`qa.training.synthetic`); each is
            searched on its own and added as a ``swap`` group.
        selected: ids of the questions to make groups of (default all); the others' paragraphs are still
            in the corpus, so distractors come from whole articles.
    """
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    workdir = Path(workdir)
    files = write_training_squad(examples, workdir / "squad")
    questions = write_corpus(files, workdir / "corpus")
    source_of = {ex.id: ex.source for ex in examples}
    build_index(workdir / "corpus", workdir / "index", show_progress=show_progress)
    retriever = Retriever.load(workdir / "index")
    kind = lambda q: "answerable" if q.spans else "unanswerable"  # noqa: E731
    chosen = [q for q in questions if selected is None or q.id in selected]
    groups = list(_groups_for(retriever, chosen, source_of, top_k, kind))
    if swaps:
        swapped = [q for q in questions if q.id in swaps]
        groups += [PassageGroup(f"{g.id}-swap", g.question, g.kind, g.source, g.passages, g.answers)
                   for g in _groups_for(retriever, swapped, source_of, top_k, lambda q: "swap",
                                               lambda q: swaps[q.id])]
    logger.info("%d groups (%d questions in, top %d)", len(groups), len(questions), top_k)
    return groups


def single_groups(examples: Sequence[SquadExample], max_chars: int = 1200) -> list[PassageGroup]:
    """Answerable examples as one-passage groups of their own paragraph (kind ``single``).

    One softmax over one window is the usual single-paragraph loss, so these teach reading spans at a
    window's cost while the multi-passage groups teach choosing among passages. A paragraph longer than
    ``max_chars`` (COVID-QA's whole papers) is cut to about ``max_chars`` around its first answer, at
    whitespace, so that a group stays one window; answers that fall outside the cut are dropped.
    """
    groups = []
    for ex in examples:
        if not ex.answers:
            continue
        start, end = 0, len(ex.context)
        if end > max_chars:
            first, length = ex.answers[0][1], len(ex.answers[0][0])
            start = max(0, first + length // 2 - max_chars // 2)
            end = min(len(ex.context), start + max_chars)
            start = max(0, end - max_chars)
            if start > 0:  # begin at a word
                space = ex.context.find(" ", start)
                start = space + 1 if 0 <= space < first else start
            if end < len(ex.context):  # end after a word
                space = ex.context.rfind(" ", start, end)
                end = space if space > first + length else end
        passage = ex.context[start:end]
        spans = tuple(sorted({(s - start, s - start + len(t)) for t, s in ex.answers if start <= s and s + len(t) <= end}))
        if spans:
            groups.append(PassageGroup(ex.id, ex.question, "single", ex.source, (passage,), (spans,)))
    return groups


def write_groups(groups: Iterable[PassageGroup], path: str | Path) -> None:
    from qa.jsonl import write_jsonl

    write_jsonl(path, (g.to_dict() for g in groups))


def read_groups(path: str | Path) -> list[PassageGroup]:
    from qa.jsonl import read_jsonl

    return [PassageGroup.from_dict(row) for row in read_jsonl(path)]
