"""The question set eval/questions.jsonl: schema, coverage, and every answer verbatim in its document."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from helpers.corpus import tracked_files

from qa.evaluation.runner import KINDS, load_questions
from qa.jsonl import read_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = REPO_ROOT / "eval" / "questions.jsonl"
SEEDS = REPO_ROOT / "seeds"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_jsonl(QUESTIONS)


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    # Exactly as qa.ingest.documents.load_documents reads a .txt file: bytes decoded as UTF-8 (BOM dropped).
    # Only the corpus the repository ships: not what a user added to seeds/.
    return {p.stem: p.read_bytes().decode("utf-8-sig") for p in tracked_files(SEEDS) if p.suffix == ".txt"}


def test_schema(rows):
    for row in rows:
        assert set(row) == {"id", "question", "answers", "doc_id", "kind"}, row
        assert isinstance(row["id"], str) and row["id"], row
        assert isinstance(row["question"], str) and row["question"].strip().endswith("?"), row
        assert isinstance(row["answers"], list) and all(isinstance(a, str) and a.strip() for a in row["answers"]), row
        assert row["kind"] in KINDS, row
        if row["kind"] == "unanswerable":
            assert row["answers"] == [] and row["doc_id"] is None, row
        else:
            assert row["answers"] and isinstance(row["doc_id"], str), row
            assert all(a == a.strip() for a in row["answers"]), row  # no stray spaces around an answer


def test_loader_accepts_the_set(rows):
    questions = load_questions(QUESTIONS)
    assert [q.id for q in questions] == [r["id"] for r in rows]


def test_ids_and_questions_are_unique(rows):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    texts = [r["question"].lower() for r in rows]
    assert len(texts) == len(set(texts))


def test_size_and_mix(rows):
    kinds = collections.Counter(r["kind"] for r in rows)
    assert len(rows) >= 80
    assert kinds["paraphrase"] >= 15
    assert kinds["unanswerable"] >= 10
    assert kinds["list"] >= 5 and kinds["why"] >= 5


def test_all_documents_covered_and_the_long_one_most(rows, documents):
    per_doc = collections.Counter(r["doc_id"] for r in rows if r["doc_id"] is not None)
    assert set(per_doc) == set(documents), "every question names a seeds/ document, and every document has questions"
    longest = max(documents, key=lambda d: len(documents[d]))
    assert per_doc[longest] == max(per_doc.values())
    assert min(per_doc.values()) >= 10


def test_every_answer_is_verbatim_in_its_document(rows, documents):
    missing = [(r["id"], a) for r in rows if r["doc_id"] for a in r["answers"] if a not in documents[r["doc_id"]]]
    assert not missing, f"answers not found verbatim in their document: {missing}"


def test_answers_are_short(rows):
    # SQuAD-style spans, not passages: at most 20 words.
    long = [(r["id"], a) for r in rows for a in r["answers"] if len(a.split()) > 20]
    assert not long
