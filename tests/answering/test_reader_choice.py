"""Choosing a reader: by name, per question, in a cascade, and while the server is busy."""

from __future__ import annotations

import json
import math
import threading

import pytest

from qa.errors import InvalidInput, MissingPath
from qa.reading.reader import READER_DIRS, ReaderResult, reader_dir, reader_name
from qa.types import Passage, Span


class FirstWords:
    """A stand-in reader: answers each passage's first word, all alike, and records what it read."""

    def __init__(self, name: str, folder, score: float = 0.9, gate: threading.Event | None = None):
        self.name, self.path, self.score, self.gate = name, folder, score, gate
        self.read_passages: list[list[str]] = []
        self.read_texts: list[list[str]] = []

    def read(self, question, passages, top_n: int = 5):
        self.read_passages.append([p.id for p in passages])
        self.read_texts.append([p.text for p in passages])
        if self.gate is not None:
            self.gate.wait(10)
        spans = []
        for p in passages:
            text = p.text.split()[0]
            at = p.text.index(text)
            spans.append(Span(text, self.score, p.doc_id, p.start + at, p.start + at + len(text), p.id))
        return ReaderResult(spans, 0.0)


def test_shipped_readers_are_found_by_name_and_anything_else_is_refused(tmp_path):
    assert reader_dir("fast") == READER_DIRS["fast"] and (READER_DIRS["fast"] / "config.json").is_file()
    assert reader_name(READER_DIRS["fast"]) == "fast" and reader_name(tmp_path) == tmp_path.name
    with pytest.raises(MissingPath, match="accurate or fast"):
        reader_dir(tmp_path / "nothing-here")
    (tmp_path / "config.json").write_text("{}")
    assert reader_dir(tmp_path) == tmp_path


def test_a_cascade_reads_only_the_passages_of_the_fast_readers_best_candidates():
    from qa.answering.pipeline import narrowed

    passages = [Passage(f"p{i}", "d", 10 * i, 10 * i + 5, "words") for i in range(5)]
    spans = [Span("a", 0.9, "d", 30, 31, "p3"), Span("b", 0.8, "d", 10, 11, "p1"), Span("c", 0.7, "d", 31, 32, "p3")]
    result = ReaderResult(spans, 0.0)
    assert [p.id for p in narrowed(result, passages, 2)] == ["p1", "p3"]  # best two, in reading order
    # Candidates in two passages only: the best-ranked other passage fills the third place.
    assert [p.id for p in narrowed(result, passages, 3)] == ["p0", "p1", "p3"]
    assert [p.id for p in narrowed(ReaderResult([], 1.0), passages, 2)] == ["p0", "p1"]


def test_a_focused_cascade_reads_whole_words_around_the_fast_readers_candidates():
    from qa.answering.pipeline import focused, narrowed

    text = "The bridge was opened in 1932 by the premier, and it carries eight lanes of traffic."
    passages = [Passage("p0", "d", 100, 100 + len(text), text), Passage("p1", "d", 300, 300 + len(text), text)]
    at = 100 + text.index("1932")
    year = Span("1932", 0.9, "d", at, at + 4, "p0")
    cut = narrowed(ReaderResult([year], 0.0), passages, 2, focus=10)
    # 10 characters either side of "1932" reach into "opened" and "premier": widened to whole words. The
    # passage the fast reader found nothing in fills the second place whole.
    assert cut[0].text == "opened in 1932 by the premier," and cut[0].id == "p0"
    assert text[cut[0].start - 100 : cut[0].end - 100] == cut[0].text  # still the document's own characters
    assert cut[1] == passages[1]
    # Two candidates in one passage: one window from before the first to after the last.
    lanes = Span("eight lanes", 0.5, "d", 100 + text.index("eight"), 100 + text.index(" of"), "p0")
    assert focused(passages[0], [year, lanes], 3).text == "in 1932 by the premier, and it carries eight lanes of"
    assert focused(passages[0], [year], 500) == passages[0]  # no shorter: the passage itself
    assert narrowed(ReaderResult([year], 0.0), passages, 2) == passages  # no focus: whole passages


@pytest.fixture
def two_readers(tmp_path):
    main, fast = tmp_path / "main", tmp_path / "fast"
    for folder in (main, fast):
        folder.mkdir()
    (main / "calibration.json").write_text(json.dumps({"threshold": 0.5, "top_k": 3,
                                                       "cascade": {"reader": "fast", "passages": 1}}))
    (fast / "calibration.json").write_text(json.dumps({"threshold": 0.2, "top_k": 4}))
    return main, fast


def test_each_question_may_name_its_reader_and_the_answer_says_which_read(tiny_retriever, two_readers):
    from qa.answering.pipeline import QA

    main, fast = FirstWords("accurate", two_readers[0]), FirstWords("fast", two_readers[1])
    qa = QA(tiny_retriever, main, others=[fast])
    assert qa.reader_names == ("accurate", "fast") and qa.threshold == 0.5 and qa.top_k == 3
    asked = qa.ask("What is FAISS?")
    assert asked.reader == "accurate" and qa.to_json(asked)["reader"] == "accurate"
    # The cascade: the fast reader read the 3 retrieved passages, the accurate one only the passage of the
    # fast reader's best candidate (the stand-in scores all alike: the first, by reading order).
    assert len(fast.read_passages[-1]) == 3 and main.read_passages[-1] == fast.read_passages[-1][:1]
    # Its answer's second opinion is the fast reader's score for the same place (both answer the first word).
    fast.score = 0.6
    scored = qa.ask_scored("What is FAISS?")
    assert scored.features[0]["second_opinion"] == 0.6 and scored.features[0]["span_score"] == 0.9
    quick = qa.ask("What is FAISS?", reader="fast")
    assert quick.reader == "fast" and len(fast.read_passages[-1]) == 4  # its own calibration: top 4
    with pytest.raises(InvalidInput, match="accurate, fast"):
        qa.ask("What is FAISS?", reader="slow")


def test_a_focused_cascade_comes_from_the_calibration_and_survives_a_rebuilt_index(tiny_retriever, two_readers):
    from qa.answering.pipeline import QA

    main_dir = two_readers[0]
    calibration = json.loads((main_dir / "calibration.json").read_text())
    calibration["cascade"]["focus"] = 1
    (main_dir / "calibration.json").write_text(json.dumps(calibration))
    main, fast = FirstWords("accurate", main_dir), FirstWords("fast", two_readers[1])
    qa = QA(tiny_retriever, main, others=[fast])
    assert qa.cascade == {"reader": "fast", "passages": 1, "focus": 1}
    qa.ask("What is FAISS?")
    # The fast reader answered the first word of each passage; the accurate one read that word and the next.
    whole, (read,) = fast.read_texts[-1][0], main.read_texts[-1]
    assert read == " ".join(whole.split()[:2]) and whole.startswith(read)
    assert qa.with_retriever(tiny_retriever).cascade == qa.cascade
    assert QA(tiny_retriever, main, others=[fast], focus=0).cascade == {"reader": "fast", "passages": 1}


def test_a_busy_server_reads_with_the_fallback_and_says_so(tiny_retriever, two_readers):
    from qa.answering.pipeline import QA

    gate = threading.Event()
    main, fast = FirstWords("accurate", two_readers[0], gate=gate), FirstWords("fast", two_readers[1])
    qa = QA(tiny_retriever, main, others=[fast], busy=1)
    first: list = []
    worker = threading.Thread(target=lambda: first.append(qa.ask("What is FAISS?")))
    worker.start()
    for _ in range(200):  # until the first question is being read (its reader waits at the gate)
        if main.read_passages:
            break
        threading.Event().wait(0.01)
    assert main.read_passages, "the first question never reached its reader"
    second = qa.ask("What is BM25?")  # one question in flight already: more than busy=1 with this one
    named = qa.ask("What is BM25?", reader="fast")
    gate.set()
    worker.join(10)
    assert first[0].reader == "accurate" and second.reader == "fast" and named.reader == "fast"
    assert qa.ask("What is FAISS?").reader == "accurate"  # alone again: the default reads
    queued = [0]
    qa.waiting = lambda: queued[0]  # questions waiting in a server's queue count too
    queued[0] = 1
    assert qa.ask("What is FAISS?").reader == "fast"
    queued[0] = 0
    assert qa.ask("What is FAISS?").reader == "accurate"


def test_a_rebuilt_index_keeps_both_readers(tiny_retriever, two_readers):
    from qa.answering.pipeline import QA

    main, fast = FirstWords("accurate", two_readers[0]), FirstWords("fast", two_readers[1])
    qa = QA(tiny_retriever, main, others=[fast], busy=3).with_retriever(tiny_retriever)
    assert qa.reader_names == ("accurate", "fast") and qa.busy == 3 and qa.threshold == 0.5


def test_a_rescaled_calibrator_keeps_the_order_and_moves_the_probabilities():
    from qa.answering.calibrator import Calibrator

    cal = Calibrator(("span_score", "agreement"), (0.5, 1.0), (0.2, 1.0), (1.5, 0.5), -0.3)
    rows = [{"span_score": s, "agreement": a} for s, a in ((0.9, 2), (0.4, 1), (0.6, 3), (0.1, 1))]
    scaled = cal.rescaled(0.5, -0.2)
    for row in rows:
        z = -0.3 + 1.5 * (row["span_score"] - 0.5) / 0.2 + 0.5 * (row["agreement"] - 1.0)  # by hand
        assert cal.logit(row) == pytest.approx(z)
        assert scaled.probability(row) == pytest.approx(1 / (1 + math.exp(-(0.5 * z - 0.2))))
    assert sorted(rows, key=cal.probability) == sorted(rows, key=scaled.probability)


def test_out_of_fold_scaling_leaves_a_calibrated_score_alone_and_tames_an_overconfident_one():
    """Rows whose candidate is right with probability equal to its span score: a logistic calibrator on
    logit(span score) is already calibrated on new runs, so the out-of-fold slope is about 1 and the shift
    about 0. Runs where the score is right half as often as it says (a corpus unlike the fit's): the
    calibrator fitted on the others over-states it, and the scaling pulls it down (slope below 1)."""
    import random

    from qa.evaluation.calibration_fit import out_of_fold_scaling

    rng = random.Random(7)

    def rows(source: str, n: int, trust: float) -> list[dict]:
        out = []
        for _ in range(n):
            s = rng.uniform(0.02, 0.98)
            right = rng.random() < trust * s
            out.append({"source": source, "candidate": "x", "answerable": True, "gold": ["x" if right else "y"],
                        "features": {"span_score": math.log(s / (1 - s))}, "candidates": []})
        return out

    calibrated = [r for k in range(4) for r in rows(f"run{k}", 1500, 1.0)]
    slope, shift = out_of_fold_scaling(calibrated, picks=False, features=("span_score",))
    assert slope == pytest.approx(1.0, abs=0.12) and shift == pytest.approx(0.0, abs=0.12)
    mixed = [r for k in range(3) for r in rows(f"run{k}", 1500, 1.0 if k else 0.3)]
    mixed_slope, _ = out_of_fold_scaling(mixed, picks=False, features=("span_score",))
    assert mixed_slope < slope
    assert out_of_fold_scaling(calibrated[:3000], picks=False, features=("span_score",)) is None  # 2 runs
