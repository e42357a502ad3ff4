"""What ``qa ask`` / ``qa search`` accept as a question: UTF-8 text, from the command line or standard input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import exit_status
from qa.cli import main
from qa.types import Answer

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_UTF8 = "not UTF-8"


class FakeQA:
    """Stands in for the pipeline: records how it was loaded and what it was asked."""

    loads: list[dict] = []

    def __init__(self, **how):
        self.how = how
        self.threshold = 0.5
        self.documents = {}
        self.asked: list[str] = []

    @classmethod
    def load(cls, index_dir="embeddings", reader=None, threshold=None, encoder=None):
        qa = cls(index_dir=str(index_dir), reader=None if reader is None else str(reader))
        cls.loads.append(qa.how)
        return qa

    def ask(self, question, top_k=5, mode="hybrid", threshold=None):
        self.asked.append(question)
        return Answer(question=question, text=None, score=0.0, abstained=True, evidence="")

    def to_json(self, answer):
        return {"question": answer.question, "answer": answer.text, "score": answer.score,
                "abstained": answer.abstained, "evidence": answer.evidence, "citations": [], "passages": []}


@pytest.fixture
def fake_qa(monkeypatch):
    import qa.answering.pipeline as pipeline

    FakeQA.loads = []
    monkeypatch.setattr(pipeline, "QA", FakeQA)
    return FakeQA


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_a_non_utf8_byte_on_the_command_line_is_one_clear_line(tmp_path):
    """A real argv byte 0xFF (Python decodes it to a lone surrogate); refused before any model loads."""
    code = "import sys; from qa.cli import main; sys.exit(main())"
    for command in ("ask", "search"):
        done = subprocess.run([sys.executable, "-c", code, command, b"when do trusts \xff go live?",
                               "--index", str(tmp_path / "no-index")],
                              cwd=REPO_ROOT, capture_output=True, timeout=300)
        err = done.stderr.decode("utf-8", errors="replace")
        assert done.returncode == 2, err
        assert NOT_UTF8 in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_lone_surrogate_in_the_question_is_refused(capsys, fake_qa, command):
    code = main([command, "when \udcff?"])
    err = capsys.readouterr().err
    assert code == 2 and NOT_UTF8 in err and "Traceback" not in err
    assert fake_qa.loads == []  # refused before loading anything


def test_ask_dash_reads_the_question_from_standard_input(capsys, monkeypatch, fake_qa):
    question = "When do primary care trusts go live?\nAsked from a file."
    _stdin(monkeypatch, question.encode("utf-8") + b"\n")
    assert main(["ask", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == question


def test_ask_dash_refuses_non_utf8_input(capsys, monkeypatch, fake_qa):
    _stdin(monkeypatch, b"caf\xe9?\n")  # Latin-1, not UTF-8
    assert main(["ask", "-"]) == 2
    err = capsys.readouterr().err
    assert NOT_UTF8 in err and "Traceback" not in err and fake_qa.loads == []


def test_ask_dash_refuses_empty_input(capsys, monkeypatch, fake_qa):
    _stdin(monkeypatch, b"  \n")
    assert main(["ask", "-"]) == 2 and "empty" in capsys.readouterr().err


def test_ask_reader_loads_that_reader(capsys, fake_qa, tmp_path):
    reader = tmp_path / "my-reader"
    reader.mkdir()
    assert main(["ask", "When?", "--reader", str(reader), "--index", str(tmp_path / "idx")]) == 0
    assert fake_qa.loads == [{"index_dir": str(tmp_path / "idx"), "reader": str(reader)}]


def test_ask_reader_that_does_not_exist_is_refused_before_loading(capsys, fake_qa, tmp_path):
    assert main(["ask", "When?", "--reader", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "--reader" in err and str(tmp_path / "nope") in err and fake_qa.loads == []


@pytest.mark.parametrize("argv,words", [
    (["ask", "When?", "-k", "0"], "qa ask: error: argument -k: must be at least 1, got 0"),
    (["ask", "When?", "--threshold", "1.5"], "qa ask: error: argument --threshold: must be between 0 and 1, got 1.5"),
    (["search", "When?", "-k", "-1"], "qa search: error: argument -k: must be at least 1, got -1"),
])
def test_bad_numbers_are_refused_in_one_line_before_loading(capsys, fake_qa, argv, words):
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(words) and len(err.splitlines()) == 1 and fake_qa.loads == []
