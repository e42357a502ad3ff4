"""``qa eval`` without matplotlib (``pip install -e .`` leaves out the ``eval`` extra): the evaluation runs,
and the report says, as one log line does, that its plots need ``pip install 'qa[eval]'``."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace

import pytest

from qa.answering.pipeline import Scored
from qa.cli import main
from qa.types import Answer, Document, Hit, Passage

TEXT = "Primary care trusts go live in April 2000."
DOC = Document("a", "Doc A", "a.txt", TEXT)
PASSAGE = Passage("a0", "a", 0, len(TEXT), TEXT)


class RefusingQA:
    """Shaped like qa.answering.pipeline.QA: one document, one passage, and a reader that always abstains."""

    def __init__(self):
        self.threshold = 0.5
        self.documents = {"a": DOC}
        self.reader = SimpleNamespace(path="fake")
        self.retriever = SimpleNamespace(index=SimpleNamespace(passages=[PASSAGE]), documents=self.documents,
                                         search=lambda query, top_k=5, mode="hybrid": [Hit(PASSAGE, 1.0, 1)])

    def ask(self, question: str, top_k: int = 5, mode: str = "hybrid", threshold: float | None = None) -> Answer:
        return self.answer_from_hits(question, self.retriever.search(question, top_k, mode), threshold)

    def ask_scored(self, question: str, top_k: int = 5, mode: str = "hybrid",
                   threshold: float | None = None) -> Scored:
        return Scored(self.ask(question, top_k, mode, threshold), ())

    def answer_from_hits(self, question: str, hits, threshold: float | None = None) -> Answer:
        return Answer(text=None, abstained=True, evidence="", question=question, score=0.0, hits=tuple(hits),
                      alternatives=(), timings={"retrieve_ms": 1.0, "read_ms": 1.0, "total_ms": 2.0})


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Importing matplotlib fails, as where it is not installed (None in sys.modules stops an import)."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def test_qa_eval_runs_and_says_how_to_get_the_plots(no_matplotlib, tmp_path, monkeypatch, capsys, caplog):
    import qa.answering.pipeline

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": "When do trusts go live?", "answers": ["April 2000"],
                                     "doc_id": "a", "kind": "factoid"}) + "\n", encoding="utf-8")
    monkeypatch.setattr(qa.answering.pipeline.QA, "load", classmethod(lambda cls, *a, **kw: RefusingQA()))
    with caplog.at_level(logging.WARNING):
        code = main(["eval", "--questions", str(questions), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "pip install &#x27;qa[eval]&#x27;" in report or "pip install 'qa[eval]'" in report
    assert "<img" not in report
    assert "When do trusts go live?" in report  # the rest of the report is there
    said = [r.getMessage() for r in caplog.records if "matplotlib" in r.getMessage()]
    assert len(said) == 1 and "pip install 'qa[eval]'" in said[0], said
