"""``qa ask --doc ID``: the question is answered from the chosen documents only."""

from __future__ import annotations

import json

import pytest
from helpers.fakes import FirstWordReader

from qa.answering.pipeline import QA
from qa.cli import main
from qa.retrieval.retriever import Retriever

QUESTION = "Which rocket carried astronauts to the Moon?"


@pytest.fixture
def tiny_qa(tiny_index, fake_encoder, tmp_path, monkeypatch):
    qa = QA(Retriever.load(tiny_index, encoder=fake_encoder), FirstWordReader(tmp_path), threshold=0.0)
    monkeypatch.setattr(QA, "load", classmethod(lambda cls, *a, **k: qa))
    return qa


def _ask(capsys, *args) -> dict:
    assert main(["ask", QUESTION, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_doc_limits_the_passages_to_the_chosen_documents(tiny_qa, capsys):
    assert _ask(capsys)["citations"][0]["doc_id"] == "space/rockets"
    limited = _ask(capsys, "--doc", "weather", "--doc", "kitchen/bread")
    assert limited["passages"] and {p["doc_id"] for p in limited["passages"]} <= {"weather", "kitchen/bread"}


def test_an_unknown_doc_is_a_one_line_error(tiny_qa, capsys):
    assert main(["ask", QUESTION, "--doc", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unknown document id(s) ['nope']" in err
