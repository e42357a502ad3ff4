"""Feedback rows: what a person rated, never a gold label unless they confirmed or corrected the answer."""

from __future__ import annotations

import threading

import pytest

from qa.app.feedback import FeedbackLog
from qa.jsonl import read_jsonl

ANSWERED = {
    "question": "When do primary care trusts go live?", "answer": "April 2000", "score": 0.9, "abstained": False,
    "evidence": "…", "citations": [{"doc_id": "000_x", "title": "t", "start": 1, "end": 9, "quote": "q"}],
    "passages": [],
}
ABSTAINED = {**ANSWERED, "question": "What is the boiling point of nitrogen?", "answer": None, "score": 0.05,
             "abstained": True, "evidence": "", "citations": []}
KEYS = {"id", "question", "answers", "doc_id", "kind", "verdict", "answer", "citations", "time",
        "rating", "abstained", "correction", "confirmed"}


@pytest.fixture
def log(tmp_path):
    return FeedbackLog(tmp_path / "fb" / "feedback.jsonl")


def test_a_thumbs_up_rates_the_answer_without_making_it_a_label(log):
    log.append(FeedbackLog.record(ANSWERED, "up"))
    (row,) = log.rows()
    assert set(row) == KEYS and row["kind"] == "feedback"
    assert (row["rating"], row["verdict"], row["answer"], row["abstained"]) == ("up", "up", "April 2000", False)
    assert row["answers"] == [] and row["doc_id"] is None  # not a gold label: nobody confirmed it
    assert row["correction"] is None and row["confirmed"] is False
    assert row["citations"] == ANSWERED["citations"] and row["time"].endswith("+00:00")


def test_a_thumbs_up_on_an_abstention_is_recorded_as_one(log):
    log.append(FeedbackLog.record(ABSTAINED, "up"))
    (row,) = log.rows()
    assert row["abstained"] is True and row["answer"] is None and row["rating"] == "up"
    assert row["answers"] == [] and row["doc_id"] is None and row["correction"] is None


def test_a_thumbs_down_keeps_what_was_shown(log):
    log.append(FeedbackLog.record(ANSWERED, "down"))
    (row,) = log.rows()
    assert (row["rating"], row["answer"], row["answers"], row["abstained"]) == ("down", "April 2000", [], False)


def test_a_confirmed_answer_is_a_label_in_the_cited_document(log):
    log.append(FeedbackLog.record(ANSWERED, "up", confirmed=True))
    (row,) = log.rows()
    assert row["confirmed"] is True and row["answers"] == ["April 2000"] and row["doc_id"] == "000_x"


def test_a_correction_is_the_label(log):
    log.append(FeedbackLog.record(ABSTAINED, "down", correction="  -196 °C "))
    (row,) = log.rows()
    assert row["correction"] == "-196 °C" and row["answers"] == ["-196 °C"] and row["abstained"] is True
    assert row["doc_id"] is None  # the person named no document: any document holding it counts


def test_what_cannot_be_a_row_is_refused(log):
    with pytest.raises(ValueError, match="'up' or 'down'"):
        FeedbackLog.record(ANSWERED, "meh")
    with pytest.raises(ValueError, match="nothing to confirm"):
        FeedbackLog.record(ABSTAINED, "up", confirmed=True)
    with pytest.raises(ValueError, match="correction"):
        FeedbackLog.record(ANSWERED, "down", correction=7)


def test_rows_survive_line_separators_inside_the_text(log):
    """U+2028 and U+0085 are written unescaped; a reader that splits on them would break the row."""
    question = "When do trusts go live?\u2028Second line\u0085third"
    log.append(FeedbackLog.record({**ANSWERED, "question": question}, "up"))
    log.append(FeedbackLog.record(ANSWERED, "down"))
    rows = log.rows()
    assert [r["question"] for r in rows] == [question, ANSWERED["question"]]
    assert read_jsonl(log.path) == rows


def test_concurrent_feedback_appends_stay_whole_lines(tmp_path):
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    long_payload = {**ANSWERED, "question": "x" * 20_000}
    threads = [threading.Thread(target=lambda: [log.append(FeedbackLog.record(long_payload, "up")) for _ in range(10)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = log.rows()
    assert len(rows) == 80 and all(len(r["question"]) == 20_000 for r in rows)


def test_no_file_yet_means_no_rows(tmp_path):
    assert FeedbackLog(tmp_path / "none.jsonl").rows() == []
