"""Feedback rows from the app become gold labels only when a person confirmed or corrected the answer."""

from __future__ import annotations

import json
import logging

import pytest

from qa.errors import InvalidInput
from qa.evaluation.runner import Question, gold_passages, load_questions
from qa.types import Passage

CITED = [{"doc_id": "000", "title": "PCTs", "start": 0, "end": 40, "quote": "Primary care trusts go live in April 2000."}]
BASE = {"kind": "feedback", "question": "When do PCTs go live?", "answer": "April 2000", "citations": CITED,
        "time": "2026-11-22T20:00:00Z"}

ROWS = [
    dict(BASE, id="up-only", rating="up"),  # the model's own answer, liked: not a label
    dict(BASE, id="legacy-up", verdict="up", answers=["April 2000"], doc_id="000"),  # today's rows: not a label either
    dict(BASE, id="confirmed", rating="up", confirmed=True),
    dict(BASE, id="corrected", rating="down", correction="1 April 2000", doc_id="000"),
    dict(BASE, id="corrected-no-doc", rating="down", correction=" 1 April 2000 "),
    dict(BASE, id="abstained", answer=None, citations=[], abstained=True, rating="up", confirmed=True),
    dict(BASE, id="abstained-corrected", answer=None, citations=[], abstained=True, correction="April 2000"),
    dict(BASE, id="blank-correction", rating="down", correction="   "),
    dict(BASE, id="down", rating="down"),
]


@pytest.fixture
def feedback_file(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    return path


def test_only_confirmed_or_corrected_rows_become_labels(feedback_file, caplog):
    with caplog.at_level(logging.INFO, logger="qa.evaluation.runner"):
        questions = {q.id: q for q in load_questions(feedback_file)}
    assert sorted(questions) == ["abstained-corrected", "confirmed", "corrected", "corrected-no-doc"]
    # Confirmed: the answer shown, in the document it cited.
    assert questions["confirmed"] == Question("confirmed", "When do PCTs go live?", ("April 2000",), "000", "factoid")
    # Corrected: the correction, in the document the row names, or any document when it names none.
    assert questions["corrected"].answers == ("1 April 2000",) and questions["corrected"].doc_id == "000"
    assert questions["corrected-no-doc"].answers == ("1 April 2000",) and questions["corrected-no-doc"].doc_id is None
    assert questions["abstained-corrected"].answers == ("April 2000",)
    # Five rows skipped, counted in the log: two thumbs-up alone, one abstention, two neither confirmed nor corrected.
    assert "5 feedback row(s) skipped" in caplog.text
    assert "2 thumbs-up without a confirmation" in caplog.text and "1 abstained" in caplog.text


def test_a_file_of_unconfirmed_feedback_holds_no_questions(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="holds no questions"):
        load_questions(path)


def test_a_label_without_a_document_counts_passages_of_any_document():
    passages = [Passage("a0", "a", 0, 20, "They go live in 1 April 2000."), Passage("b0", "b", 0, 10, "Not here."),
                Passage("c0", "c", 0, 20, "From 1 April 2000 on.")]
    anywhere = Question("x", "When?", ("1 April 2000",), None, "factoid")
    assert [p.id for p in gold_passages(anywhere, passages)] == ["a0", "c0"]
    in_a = Question("y", "When?", ("1 April 2000",), "a", "factoid")
    assert [p.id for p in gold_passages(in_a, passages)] == ["a0"]
