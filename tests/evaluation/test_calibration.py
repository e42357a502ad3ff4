"""A calibration belongs to a reader: qa eval --calibrate writes the calibration of the reader it ran with,
and qa eval squad reads the calibration of the reader it runs with, not the packaged one's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.scripted_qa import QUESTIONS, FakeQA

import qa.answering.pipeline
from qa.reading.reader import DEFAULT_READER_DIR
from qa.types import Span


def _eval_args(argv: list[str]) -> argparse.Namespace:
    from qa.cli import build_parser

    return build_parser(["eval"]).parse_args(["eval", *argv])


@pytest.fixture
def questions_file(tmp_path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                        "doc_id": q.doc_id, "kind": q.kind}) + "\n" for q in QUESTIONS))
    return path


@pytest.fixture
def saved(monkeypatch, tmp_path) -> list[dict]:
    """Every save_calibration call, as the answering stage's new signature receives it."""
    calls: list[dict] = []

    def save_calibration(threshold, details, reader_dir, allow_packaged=False):
        calls.append({"threshold": threshold, "details": details, "reader_dir": Path(reader_dir),
                      "allow_packaged": allow_packaged})
        return Path(reader_dir) / "calibration.json"

    monkeypatch.setattr(qa.answering.pipeline, "save_calibration", save_calibration)
    return calls


def _fake_qa_loading(monkeypatch, packaged_dir: Path) -> list:
    """QA.load returns a FakeQA whose reader folder is --reader, or the packaged one without it."""
    loaded = []

    def load(cls, index_dir="embeddings", reader=None, threshold=None, **options):
        fake = FakeQA(0.5)
        fake.reader = SimpleNamespace(path=Path(reader) if reader else packaged_dir)
        loaded.append(fake)
        return fake

    monkeypatch.setattr(qa.answering.pipeline.QA, "load", classmethod(load))
    return loaded


def test_calibrate_with_another_reader_writes_that_readers_calibration(tmp_path, monkeypatch, questions_file, saved):
    mine = tmp_path / "my-reader"
    _fake_qa_loading(monkeypatch, DEFAULT_READER_DIR)
    args = _eval_args(["--questions", str(questions_file), "--out", str(tmp_path / "out"), "-k", "2",
                       "--calibrate", "--quiet", "--reader", str(mine)])
    assert args.func(args) == 0
    (call,) = saved
    assert call["reader_dir"] == mine and call["allow_packaged"] is False
    # The threshold worked out in test_evaluation.test_threshold_section_and_rethreshold: halfway between 0.9 and 0.8.
    assert call["threshold"] == pytest.approx(0.85)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["calibration"]["file"] == str(mine / "calibration.json")
    assert metrics["calibration"]["reader"] == str(mine)


def test_calibrate_with_the_packaged_reader_may_write_the_packaged_calibration(tmp_path, monkeypatch, questions_file,
                                                                              saved):
    _fake_qa_loading(monkeypatch, DEFAULT_READER_DIR)
    args = _eval_args(["--questions", str(questions_file), "--out", str(tmp_path / "out"), "-k", "2",
                       "--calibrate", "--quiet"])
    assert args.func(args) == 0
    (call,) = saved
    assert call["reader_dir"] == DEFAULT_READER_DIR and call["allow_packaged"] is True


SQUAD_V2 = {"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [{
    "context": "The Normans were in Normandy in the 10th and 11th centuries.",
    "qas": [
        {"id": "s1", "question": "Where were the Normans?", "is_impossible": False,
         "answers": [{"text": "Normandy", "answer_start": 20}]},
        {"id": "s2", "question": "Who beat the Normans?", "is_impossible": True, "answers": []},
    ]}]}]}


class ScoredReader:
    """A reader that finds one span per question, with a fixed score."""

    def __init__(self, path: Path, scores: dict[str, tuple[str, float]]):
        self.path = path
        self.scores = scores

    def read(self, question, passages, top_n=5):
        text, score = self.scores[question]
        return SimpleNamespace(spans=[Span(text, score, "ctx", 0, len(text), "ctx")], no_answer_score=0.0)


def test_squad_uses_the_calibration_of_the_reader_it_runs_with(tmp_path, monkeypatch, capsys):
    from qa.reading.reader import Reader

    data = tmp_path / "squad.json"
    data.write_text(json.dumps(SQUAD_V2), encoding="utf-8")
    mine = tmp_path / "my-reader"
    asked = []

    def load_calibration(reader_dir=None):
        asked.append(reader_dir)
        return {"threshold": 0.7} if reader_dir is not None and Path(reader_dir) == mine else {"threshold": 0.2}

    monkeypatch.setattr(qa.answering.pipeline, "load_calibration", load_calibration)
    reader = ScoredReader(mine, {"Where were the Normans?": ("Normandy", 0.9), "Who beat the Normans?": ("The Normans", 0.5)})
    monkeypatch.setattr(Reader, "load", classmethod(lambda cls, path=None, **kw: reader))
    args = _eval_args(["squad", "--data", str(data), "--reader", str(mine), "--out", str(tmp_path / "out"),
                       "--quiet", "--json"])
    assert args.func(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    # My reader's threshold 0.7: s1 (0.9) answers "Normandy", s2 (0.5) abstains -> both right. With the packaged
    # calibration (0.2) s2 would answer "The Normans" and score 0.
    assert metrics["threshold"] == 0.7
    assert metrics["exact"] == 100.0
    assert [Path(d) for d in asked] == [mine]
