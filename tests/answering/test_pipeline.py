"""The whole pipeline on the bundled corpus: verbatim citations, abstention, bad input."""

from __future__ import annotations

import json
from typing import Sequence

import pytest
from helpers.corpus import REPO_ROOT, SEEDS_DIR, tracked_files

from qa.answering.pipeline import load_calibration, save_calibration

pytestmark = pytest.mark.integration

# Questions about the corpus the shipped reader answers right, each with a string its answer must contain.
KNOWN_RIGHT = [
    ("When do primary care trusts go live?", "April 2000"),
    ("Who is the chief executive of NHS North West?", "Mike Farrar"),
    ("Which prime minister appointed the new ministerial team for health?", "Gordon Brown"),
    ("Where is the Health Services Management Centre?", "Birmingham"),
    ("What are primary care trusts heralded as a UK hybrid of?", "health maintenance organisations"),
]

# Questions the shipped reader misreads: the answer it gives is in the comment. A reader that gets one right makes its check XPASS, which fails: move it to KNOWN_RIGHT.
KNOWN_MISREADS = [
    ("Which university held the policy seminar on primary care trusts?", "Birmingham"),  # -> "University of Manchester", from a reference list
]

# Questions the five documents cannot answer.
OFF_CORPUS = [
    "What is the boiling point of liquid nitrogen?",
    "Who won the 2018 FIFA World Cup?",
    "How many moons does Jupiter have?",
    "What programming language is the Linux kernel written in?",
    "What is the recommended daily dose of vitamin D for adults?",
    "Which band released the album Abbey Road?",
]


@pytest.fixture(scope="module")
def qa(bundled_qa):
    return bundled_qa


def seed_text(doc) -> str:
    """The original file of a bundled document (its id is its path without extension), read and decoded
    here, not by the loader."""
    (path,) = [p for p in tracked_files(SEEDS_DIR) if p.relative_to(SEEDS_DIR).with_suffix("").as_posix() == doc.id]
    return path.read_bytes().decode("utf-8")


def right(answer_text: str | None, gold: Sequence[str]) -> bool:
    return answer_text is not None and any(g.lower() in answer_text.lower() for g in gold)


def test_citations_quote_the_original_files_and_hold_the_gold_answer(qa):
    # Over the whole evaluation set, against two oracles independent of the pipeline: the seed file's own
    # bytes (each quote is there, at the cited offsets) and the question set's gold answers (when the answer
    # is right, the first quote holds a gold answer verbatim).
    from qa.evaluation.runner import load_questions

    answered, grounded_right = 0, 0
    for q in load_questions(REPO_ROOT / "eval" / "questions.jsonl"):
        answer = qa.ask(q.question)
        assert answer.hits, q.id
        if answer.abstained:
            assert answer.text is None and answer.citations == ()
            continue
        answered += 1
        assert answer.citations, q.id
        assert answer.evidence == answer.citations[0].quote
        for c in answer.citations:
            doc = qa.documents[c.doc_id]
            original = seed_text(doc)
            assert original[c.start : c.end] == c.quote, (q.id, c)
            assert answer.text in c.quote, q.id
            assert c.title == doc.title and c.location.startswith(("paragraph ", "page "))
        if right(answer.text, q.answers):
            assert any(g in answer.citations[0].quote for g in q.answers), (q.id, answer.citations[0].quote)
            grounded_right += 1
    # Floors, not promises, set a little below what the shipped reader does (`qa eval` measures quality):
    # this guards against answers silently disappearing.
    assert answered >= 90, f"only {answered} questions answered"
    assert grounded_right >= 70, f"only {grounded_right} right answers grounded in their citation"


def test_known_answers(qa):
    """Guards the end-to-end wiring (retrieval, windowing, the shipped weights, span decoding, citations):
    every question the shipped reader is known to get right comes back right, cited from the original file."""
    for question, expected in KNOWN_RIGHT:
        answer = qa.ask(question)
        assert not answer.abstained, (question, round(answer.score, 3))
        assert expected.lower() in answer.text.lower(), (question, answer.text)
        citation = answer.citations[0]
        assert expected.lower() in citation.quote.lower()
        assert seed_text(qa.documents[citation.doc_id])[citation.start : citation.end] == citation.quote


@pytest.mark.parametrize(
    "question, expected",
    [pytest.param(q, e, marks=pytest.mark.xfail(strict=True, reason="the shipped reader misreads it")) for q, e in KNOWN_MISREADS],
)
def test_known_misreads(qa, question, expected):
    answer = qa.ask(question)
    assert right(answer.text, [expected]), answer.text


def test_the_headline_question(qa):
    answer = qa.ask("When do primary care trusts go live?")
    assert answer.text == "April 2000"
    assert answer.citations[0].doc_id == "000_514f065cc880a116"


@pytest.mark.parametrize("question", OFF_CORPUS)
def test_refuses_questions_the_documents_cannot_answer(qa, question):
    answer = qa.ask(question)
    assert answer.abstained, f"answered {answer.text!r} (score {answer.score:.3f}) for {question!r}"
    assert answer.text is None and answer.citations == ()
    assert len(answer.hits) == 5, "the closest passages come back for the UI"


def test_threshold_setting_controls_abstention(qa):
    q = "When do primary care trusts go live?"
    assert qa.ask(q, threshold=1.0).abstained
    assert not qa.ask(q, threshold=0.0).abstained


def test_json_shape_matches_the_cli_contract(qa):
    obj = qa.to_json(qa.ask("When do primary care trusts go live?", top_k=3))
    assert set(obj) == {"question", "answer", "score", "abstained", "reader", "evidence", "citations", "passages"}
    assert obj["reader"] == qa.reader_name == qa.reader.name in ("accurate", "fast")
    assert set(obj["citations"][0]) == {"doc_id", "title", "start", "end", "quote", "location"}
    assert set(obj["passages"][0]) == {"rank", "score", "doc_id", "title", "start", "end", "text"}
    assert [p["rank"] for p in obj["passages"]] == [1, 2, 3]
    json.dumps(obj)  # serialisable


def test_bad_input_is_a_clear_error(qa):
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            qa.ask(bad)
    with pytest.raises(ValueError, match="top_k"):
        qa.ask("When?", top_k=0)
    with pytest.raises(ValueError, match="mode"):
        qa.ask("When?", mode="sparse")
    with pytest.raises(ValueError, match="threshold"):
        qa.ask("When?", threshold=1.5)


def test_a_100kb_question_is_cut_not_fatal(qa):
    answer = qa.ask("When do primary care trusts go live? " + "x" * 100_000)
    assert len(answer.question) <= 4096
    assert answer.hits


def test_calibration_round_trip(tmp_path):
    path = tmp_path / "calibration.json"  # a .json path (a reader folder works too: test_answering_calibration)
    save_calibration(0.42, {"method": "test"}, path)
    assert load_calibration(path) == {"threshold": 0.42, "method": "test"}
    with pytest.raises(ValueError):
        save_calibration(2.0, {}, path)
