"""The whole pipeline on the bundled corpus: verbatim citations, abstention, bad input."""

from __future__ import annotations

import json

import pytest

from qa.answering.pipeline import load_calibration, save_calibration

pytestmark = pytest.mark.integration

# Questions about the corpus, each with a string its answer must contain.
CORPUS_QUESTIONS = [
    ("When do primary care trusts go live?", "April 2000"),
    ("Who is the chief executive of NHS North West?", "Mike Farrar"),
    ("Which prime minister appointed the new ministerial team for health?", "Gordon Brown"),
    ("Where is the Health Services Management Centre?", "Birmingham"),
    ("What are primary care trusts heralded as a UK hybrid of?", "health maintenance organisations"),
    ("Which university held the policy seminar on primary care trusts?", "Birmingham"),
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


def test_every_answer_is_quoted_verbatim_and_cited(qa):
    # Over the whole evaluation set: whatever the reader answers, its citations map back exactly.
    from qa.evaluation.runner import load_questions

    answered = 0
    for q in load_questions("eval/questions.jsonl"):
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
            assert doc.text[c.start : c.end] == c.quote, q.id
            assert answer.text in c.quote, q.id
            assert c.title == doc.title and c.location.startswith(("paragraph ", "page "))
    assert answered >= 60, f"only {answered} questions answered"


def test_known_answers(qa):
    # A quality floor, not a promise: the reader misreads some questions. Two of these six at the time of
    # writing: "heralded as a UK hybrid of?" (-> "traditional community hospitals") and, since the stage-2
    # reader (which gets 6 more of the 110 answerable eval questions right), "Which university held the
    # policy seminar?" (-> "University of Manchester", from a reference list). The eval suite measures the rest.
    wrong = []
    for question, expected in CORPUS_QUESTIONS:
        answer = qa.ask(question)
        if answer.abstained or expected.lower() not in answer.text.lower():
            wrong.append((question, answer.text, round(answer.score, 3)))
    assert len(wrong) <= 2, wrong


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
    assert set(obj) == {"question", "answer", "score", "abstained", "evidence", "citations", "passages"}
    assert set(obj["citations"][0]) == {"doc_id", "title", "start", "end", "quote"}
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
    path = tmp_path / "calibration.json"
    save_calibration(0.42, {"method": "test"}, path)
    assert load_calibration(path) == {"threshold": 0.42, "method": "test"}
    with pytest.raises(ValueError):
        save_calibration(2.0, {}, path)
