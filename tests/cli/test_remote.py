"""``qa ask --server URL``: a running app answers the shell's question, printed as ``qa ask`` prints its own."""

from __future__ import annotations

import json

import pytest

from qa.cli import main
from qa.errors import InvalidInput
from qa.types import Answer, Citation, Document, Hit, Passage

TEXT = "Primary care trusts go live in April 2000."
DOC = Document("pct", "Primary care trusts", "pct.txt", TEXT)
PASSAGE = Passage("pct:0-42", "pct", 0, len(TEXT), TEXT)


class StandInQA:
    """Answers "When?" from one document, abstains on "Nothing?", refuses "Refused?"; records doc filters."""

    threshold = 0.5
    top_k = 5
    documents = {"pct": DOC}

    def __init__(self):
        self.doc_ids = []

    def ask(self, question, top_k=5, mode="hybrid", threshold=None, history=None, doc_ids=None):
        self.doc_ids.append(doc_ids)
        hits = (Hit(PASSAGE, 0.9, 1),)
        if question == "Refused?":
            raise InvalidInput("That question is refused: ask another.")
        if question == "Nothing?":
            return Answer(question=question, text=None, score=0.1, abstained=True, evidence="", hits=hits)
        start = TEXT.index("April 2000")
        return Answer(question=question, text="April 2000", score=0.87, abstained=False, evidence=TEXT,
                      citations=(Citation("pct", DOC.title, 0, len(TEXT), TEXT),), hits=hits)

    def to_json(self, answer):
        from qa.answering.pipeline import QA

        return QA.to_json(self, answer)


@pytest.fixture(scope="module")
def stand_in(serve_app):
    """The app serving :class:`StandInQA`: (URL, the stand-in)."""
    qa = StandInQA()
    url, _ = serve_app(qa, cache_size=0)
    return url, qa


def test_the_answer_is_the_apps_json(stand_in, capsys):
    url, qa = stand_in
    assert main(["ask", "When?", "--server", url, "--json"]) == 0
    expected = qa.to_json(qa.ask("When?"))  # the oracle: what the app's pipeline returns for the question
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(expected))


def test_the_answer_is_printed_as_qa_ask_prints_it(stand_in, capsys):
    url, _ = stand_in
    assert main(["ask", "When?", "--server", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "April 2000    (87% likely right)"
    assert out[1] == f"  “{TEXT}”"
    assert out[2] == f"  [1] Primary care trusts (pct, chars 0-{len(TEXT)})"


def test_an_abstention_shows_the_closest_passages(stand_in, capsys):
    url, _ = stand_in
    assert main(["ask", "Nothing?", "--server", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "The documents don't say. Closest passages:" and out[1].startswith("  - Primary care trusts: ")


def test_the_document_filter_reaches_the_server(stand_in, capsys):
    url, qa = stand_in
    assert main(["ask", "When?", "--server", url, "--doc", "pct"]) == 0
    assert qa.doc_ids[-1] == ["pct"]


def test_a_refused_question_is_one_line_with_the_servers_reason(stand_in, capsys):
    url, _ = stand_in
    assert main(["ask", "Refused?", "--server", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused: ask another" in err


def test_no_server_is_one_line_saying_what_to_do(capsys):
    from benchmarks.loadtest import free_port

    assert main(["ask", "When?", "--server", f"http://127.0.0.1:{free_port()}/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No qa serve answers" in err and "qa serve" in err


@pytest.mark.parametrize("extra", [["-k", "3"], ["--mode", "bm25"], ["--threshold", "0.5"], ["--index", "elsewhere"]])
def test_local_settings_with_server_are_refused(extra, capsys):
    assert main(["ask", "When?", "--server", "http://127.0.0.1:9/", *extra]) == 2
    assert "--server" in capsys.readouterr().err
