"""The ``/ask`` API over real HTTP, with a stand-in pipeline (no models): what a client is told when it fails."""

from __future__ import annotations

import logging

import pytest

from qa.errors import InvalidInput
from qa.types import Answer

SECRET = "secret internal detail at /srv/qa/reader.py line 12"


class StandInQA:
    """Answers "ok?", refuses "refused?" as a user error, and fails on anything else like a bug would."""

    threshold = 0.5
    top_k = 5
    documents: dict = {}

    def ask(self, question, top_k=5, mode="hybrid", threshold=None, history=None, doc_ids=None):
        if question == "which?":  # says which documents it was limited to
            return Answer(question=question, text=repr(doc_ids), score=0.9, abstained=False, evidence="")
        if question == "ok?":
            return Answer(question=question, text=None, score=0.0, abstained=True, evidence="")
        if question == "refused?":
            raise InvalidInput("That question is refused: ask another.")
        raise RuntimeError(SECRET)

    def to_json(self, answer):
        return {"question": answer.question, "answer": answer.text, "abstained": answer.abstained}


@pytest.fixture(scope="module")
def client(serve_app):
    from gradio_client import Client

    url, _ = serve_app(StandInQA())
    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


def _refusal(client, question) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as refused:
        client.predict(question, api_name="/ask")
    return str(refused.value)


def test_a_question_is_answered(client):
    assert client.predict("ok?", api_name="/ask") == {"question": "ok?", "answer": None, "abstained": True}


def test_ask_can_be_limited_to_chosen_documents(client):
    assert client.predict("which?", None, ["b", "a"], api_name="/ask")["answer"] == "['b', 'a']"
    assert client.predict("which?", api_name="/ask")["answer"] == "None", "no filter when none is given"


def test_a_question_that_is_not_text_is_told_so(client):
    for question in (123, ["ok?"], {"q": 1}):
        message = _refusal(client, question)
        assert "must be text" in message and "empty" not in message


def test_a_lone_surrogate_is_not_utf8_text(client):
    """JSON may carry "\\udcff" (gradio_client cannot send it, so this goes over plain HTTP)."""
    from benchmarks.loadtest import HttpAsker

    with pytest.raises(RuntimeError) as refused:
        HttpAsker(client.src).ask("when \udcff?")
    assert "not UTF-8" in str(refused.value) and SECRET not in str(refused.value)


def test_an_empty_question_is_told_so(client):
    assert "empty" in _refusal(client, "   ")


def test_a_user_error_from_the_pipeline_is_shown(client):
    assert "That question is refused: ask another." in _refusal(client, "refused?")


def test_an_internal_fault_is_logged_not_shown(client, caplog):
    with caplog.at_level(logging.ERROR, logger="qa.app.ui"):
        message = _refusal(client, "crash?")
    assert "failed to answer" in message and "see its log" in message
    assert SECRET not in message and "Traceback" not in message and "RuntimeError" not in message
    assert any(SECRET in (r.exc_text or "") or (r.exc_info and SECRET in str(r.exc_info[1]))
               for r in caplog.records), "the fault is in the server's log"
