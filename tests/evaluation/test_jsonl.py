"""The evaluation's JSON-lines files (question sets, feedback, BEIR corpus and queries, predictions) split on
"\\n" only: U+2028, U+2029 and U+0085, which JSON writes unescaped with ensure_ascii=False, stay inside a record."""

from __future__ import annotations

import json

import pytest
from helpers.scripted_qa import QUESTIONS, FakeQA

from qa.errors import InvalidInput
from qa.evaluation.benchmarks import load_beir
from qa.evaluation.runner import Question, evaluate_questions, load_questions, write_outputs
from qa.jsonl import read_jsonl

SEPARATORS = "\u2028\u2029\u0085\x0b\x0c\x1c"  # all of these end a line for str.splitlines


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def test_questions_and_feedback_with_unicode_line_separators(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        _line({"id": "a", "question": f"Pasted{SEPARATORS}from PDF?", "answers": ["x"], "doc_id": "d", "kind": "factoid"})
        + _line({"id": "fb", "kind": "feedback", "question": "When?", "answer": "April\u20282000", "confirmed": True,
                 "citations": [{"doc_id": "d"}]}),
        encoding="utf-8")
    questions = load_questions(path)
    assert [q.id for q in questions] == ["a", "fb"]
    assert questions[0].question == f"Pasted{SEPARATORS}from PDF?"
    assert questions[1].answers == ("April\u20282000",)


def test_a_bad_line_is_named_by_its_newline_count(tmp_path):
    path = tmp_path / "q.jsonl"
    good = {"id": "a", "question": "Q\u2028?", "answers": ["x"], "doc_id": "d", "kind": "factoid"}
    path.write_text(_line(good) + "\n" + "{not json\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 3"):
        load_questions(path)


def test_beir_files_with_unicode_line_separators(tmp_path):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(_line({"_id": "d1", "title": "T\u2029", "text": f"one{SEPARATORS}two"}),
                                       encoding="utf-8")
    (root / "queries.jsonl").write_text(_line({"_id": "q1", "text": "what\u0085now"}), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n", encoding="utf-8")
    data = load_beir(root)
    assert data.corpus == {"d1": ("T\u2029", f"one{SEPARATORS}two")}
    assert data.queries == {"q1": "what\u0085now"} and data.qrels == {"q1": {"d1": 1}}


def test_predictions_read_back_one_record_per_question(tmp_path):
    qs = [Question("s", QUESTIONS[0].question, QUESTIONS[0].answers, QUESTIONS[0].doc_id, "factoid")]
    result = evaluate_questions(FakeQA(), qs, k=2)
    result.records[0]["question"] = "When\u2028do PCTs go live?"
    paths = write_outputs(result, tmp_path / "out")
    rows = read_jsonl(paths["predictions"])
    assert len(rows) == 1 and rows[0]["question"] == "When\u2028do PCTs go live?"
