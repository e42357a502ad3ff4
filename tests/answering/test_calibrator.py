"""Candidate features on hand-made cases, the calibrator's arithmetic, fitting, and the calibration
travelling with its reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qa.answering.calibrator import Calibrator, fit_calibrator
from qa.answering.features import FEATURES, candidate_features, question_type, type_fit, word_overlap
from qa.evaluation.calibration_fit import fit, measure
from qa.types import Hit, Passage, Span


@pytest.mark.parametrize("question, answer, expected", [
    ("When did the bridge open?", "1932", 1.0),
    ("When did the bridge open?", "in March", 1.0),
    ("When did the bridge open?", "John Bradfield", -1.0),
    ("In what year was it founded?", "the late 1990s", 1.0),
    ("How many people live there?", "twelve thousand", 1.0),
    ("How many people live there?", "4.2 million", 1.0),
    ("How many people live there?", "the capital", -1.0),
    ("Who designed the bridge?", "John Bradfield", 1.0),
    ("Who designed the bridge?", "1932", -1.0),
    ("Who designed the bridge?", "an engineer", 0.0),
    ("What is the bridge made of?", "steel", 0.0),
])
def test_type_fit_by_hand(question, answer, expected):
    assert type_fit(question, answer) == expected


def test_question_types():
    assert [question_type(q) for q in ("When?", "What year did it end?", "How much does it cost?",
                                       "Whose idea was it?", "Why did it fail?")] == ["date", "date", "number",
                                                                                      "person", None]


def test_word_overlap_by_hand():
    # Content words of the question: bridge, open (stopwords "when", "did", "the" dropped): the sentence
    # has "bridge" but not "open" ("opened" is another word): 1 of 2.
    assert word_overlap("When did the bridge open?", "The bridge opened in 1932.") == 0.5
    assert word_overlap("the of", "anything") == 0.0


def test_candidate_features_by_hand():
    a = Passage("d:0-40", "d", 0, 40, "The Harbour Bridge opened in 1932 to all.")
    b = Passage("d:50-90", "d", 50, 90, "It was 1932 when the arch was finished.")
    hits = [Hit(a, 0.03, 1, dense_rank=2, keyword_rank=1), Hit(b, 0.02, 2, dense_rank=None, keyword_rank=4)]
    best = Span("1932", 0.8, "d", 29, 33, "d:0-40", occurrences=(("d", 29, 33), ("d", 57, 61)))
    rival = Span("1932 to all", 0.5, "d", 29, 40, "d:0-40")
    row = candidate_features("When did the bridge open?", best, [best, rival], hits, 0.55,
                             "The Harbour Bridge opened in 1932 to all.")
    assert set(row) == set(FEATURES)
    assert row["span_score"] == 0.8 and row["margin"] == pytest.approx(0.3) and row["relevance"] == 0.55
    assert row["passage_rank"] == 1.0 and row["dense_rank"] == 0.5 and row["keyword_rank"] == 1.0
    assert row["agreement"] == pytest.approx(math.log(3))  # the answer stands in 2 passages: log(1 + 2)
    assert row["type_fit"] == 1.0 and row["overlap"] == 0.5
    assert row["second_opinion"] == 0.0  # no cascade: no second reader
    # Only the features asked for are computed (a calibrator's); one this version lacks is refused.
    assert candidate_features("When did the bridge open?", best, [best, rival], hits, 0.55, "",
                              names=("type_fit", "span_score")) == {"type_fit": 1.0, "span_score": 0.8}
    with pytest.raises(ValueError, match="'echo'"):
        candidate_features("When?", best, [best], hits, None, "", names=("span_score", "echo"))


def test_second_opinion_is_the_narrowing_readers_score_for_the_same_place():
    a = Passage("d:0-40", "d", 0, 40, "The Harbour Bridge opened in 1932 to all.")
    hits = [Hit(a, 0.03, 1)]
    best = Span("1932", 0.8, "d", 29, 33, "d:0-40", occurrences=(("d", 29, 33), ("d", 57, 61)))

    def opinion(*seconds: Span) -> float:
        return candidate_features("When?", best, [best], hits, None, "", ["second_opinion"], seconds)["second_opinion"]

    # The fast reader's "in 1932" shares characters 29-33 with the answer; its "Harbour" shares none.
    assert opinion(Span("in 1932", 0.6, "d", 26, 33, "d:0-40"), Span("Harbour", 0.9, "d", 4, 11, "d:0-40")) == 0.6
    assert opinion(Span("Harbour", 0.9, "d", 4, 11, "d:0-40")) == 0.0
    assert opinion(Span("1932", 0.3, "e", 29, 33, "e:0-40")) == 0.0  # same characters of another document
    assert opinion(Span("1932", 0.4, "d", 57, 61, "d:50-90")) == 0.4  # where the answer's text is found again
    assert opinion(Span("1932", 0.4, "d", 33, 37, "d:0-40")) == 0.0  # touching is not sharing


@pytest.mark.parametrize("calibration, refused", [
    ({"calibrator": Calibrator(("span_score", "echo"), (0.5, 0.0), (0.2, 1.0), (2.0, 1.0), 0.0).to_dict()}, "echo"),
    ({"calibrator": Calibrator(("span_score",), (0.5,), (0.2,), (2.0,), 0.0).to_dict(), "context_chars": 1200},
     "widened to 1200"),
])
def test_a_calibration_fitted_on_what_this_version_does_not_compute_is_refused_in_one_line(tmp_path, calibration,
                                                                                          refused):
    from qa.answering.pipeline import QA
    from qa.errors import InvalidInput
    from qa.reading.reader import DEFAULT_READER_DIR, Reader

    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").symlink_to(DEFAULT_READER_DIR / "config.json")
    (reader / "calibration.json").write_text(json.dumps({"threshold": 0.5, **calibration}))
    with pytest.raises(InvalidInput, match=refused) as caught:
        QA(retriever=None, reader=Reader(reader))
    assert "qa eval fit-calibrator" in str(caught.value) and "\n" not in str(caught.value)


def test_calibrator_probability_by_hand():
    # z = 0.5 + 1 * (2 - 0) / 1 + (-1) * (3 - 1) / 2 = 1.5; sigmoid(1.5) = 0.8175745.
    cal = Calibrator(("a", "b"), (0.0, 1.0), (1.0, 2.0), (1.0, -1.0), 0.5)
    assert cal.probability({"a": 2.0, "b": 3.0}) == pytest.approx(0.8175745)
    assert cal.probability({"b": 1.0}) == pytest.approx(1 / (1 + math.exp(-0.5)))  # missing "a": its mean
    assert Calibrator.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    # Weights listed by size of effect, sign kept.
    assert Calibrator(("a", "b"), (0, 0), (1, 1), (0.5, -2.0), 0.0).weights() == [("b", -2.0), ("a", 0.5)]
    with pytest.raises(ValueError):
        Calibrator.from_dict({**cal.to_dict(), "coef": [1.0]})


def test_fitting_learns_the_feature_that_separates():
    # Right answers have high span scores and random overlap; wrong ones low scores: the weight on
    # span_score must be positive and dominate.
    import random

    rng = random.Random(3)
    rows, labels = [], []
    for i in range(400):
        ok = i % 2 == 0
        row = {f: rng.random() for f in FEATURES}
        row["span_score"] = rng.uniform(0.6, 1.0) if ok else rng.uniform(0.0, 0.5)
        rows.append(row)
        labels.append(ok)
    cal = fit_calibrator(rows, labels)
    assert cal.weights()[0][0] == "span_score" and cal.weights()[0][1] > 0
    assert cal.probability({**rows[0], "span_score": 0.95}) > 0.9 > 0.1 > cal.probability({**rows[0], "span_score": 0.05})
    with pytest.raises(ValueError, match="both"):
        fit_calibrator(rows[:3], [True, True, True])


def test_fit_and_measure_on_rows():
    # Answerable rows whose candidate is right have span_score 0.9, wrong ones 0.2; unanswerable 0.1.
    def row(score, candidate, gold):
        return {"features": {f: 0.0 for f in FEATURES} | {"span_score": score}, "candidate": candidate,
                "gold": gold, "answerable": bool(gold), "source": "t"}
    rows = [row(0.9, "1932", ["1932"])] * 30 + [row(0.2, "Paris", ["1932"])] * 10 + [row(0.1, "Rome", [])] * 20
    calibration = fit(rows, target_precision=0.9)  # 30 right of 40 answerable: only the right ones clear 90%
    assert 0.0 < calibration["threshold"] < 1.0
    m = measure(rows, Calibrator.from_dict(calibration["calibrator"]), calibration["threshold"],
                calibration["bands"])
    # The right 30 answered, the 10 wrong and 20 unanswerable refused: EM = (30 + 20) / 60.
    assert m["exact"] == pytest.approx(50 / 60) and m["NoAns_refused"] == 1.0
    assert m["answerable_refused"] == pytest.approx(10 / 40)
    assert m["band_High"]["right"] == 1.0
    # Runs made before a feature existed lack it: the calibrator is fitted on the features every row records.
    old = [{**r, "features": {f: v for f, v in r["features"].items() if f != "second_opinion"}} for r in rows]
    assert Calibrator.from_dict(fit(old)["calibrator"]).features == tuple(f for f in FEATURES if f != "second_opinion")
    assert Calibrator.from_dict(calibration["calibrator"]).features == FEATURES


@pytest.mark.integration
def test_the_calibrator_travels_with_its_reader(bundled_index, tmp_path: Path, monkeypatch):
    """A reader folder with a calibrator in its calibration.json: QA.load(reader=...) scores answers
    with that calibrator and reads as many passages as the file says; the packaged reader's calibration is
    untouched."""
    from qa.answering.pipeline import QA
    from qa.reading.reader import DEFAULT_READER_DIR

    packaged = (DEFAULT_READER_DIR / "calibration.json").read_bytes()
    reader = tmp_path / "reader"
    reader.mkdir()
    for f in DEFAULT_READER_DIR.iterdir():
        if f.is_file() and f.name != "calibration.json":
            (reader / f.name).symlink_to(f)
    cal = Calibrator(("span_score", "type_fit"), (0.5, 0.0), (0.2, 1.0), (2.0, 1.0), 0.0)
    (reader / "calibration.json").write_text(json.dumps({"threshold": 0.5, "calibrator": cal.to_dict(), "top_k": 3}))
    qa = QA.load(bundled_index, reader=reader)
    scored = qa.ask_scored("When do primary care trusts go live?")
    answer = scored.answer
    assert set(scored.features[0]) == set(FEATURES)  # an evaluation records every feature
    assert answer.score == pytest.approx(cal.probability(scored.features[0]))
    # Asked without recording, only the calibrator's two features are computed, to the same score.
    import qa.answering.pipeline as pipeline

    computed = []

    def spy(*args, **kwargs):
        row = candidate_features(*args, **kwargs)
        computed.append(set(row))
        return row

    monkeypatch.setattr(pipeline, "candidate_features", spy)
    assert qa.ask("When do primary care trusts go live?").score == pytest.approx(answer.score)
    assert computed and all(names == {"span_score", "type_fit"} for names in computed)
    assert qa.top_k == 3 and len(answer.hits) == 3
    assert len(qa.ask("When do primary care trusts go live?", top_k=2).hits) == 2  # the caller's number wins
    assert (DEFAULT_READER_DIR / "calibration.json").read_bytes() == packaged


def test_a_new_threshold_keeps_the_readers_calibrator(tmp_path: Path):
    """qa eval --calibrate re-chooses only the threshold: the calibrator and bands saved with the reader
    stay; fit-calibrator (replace=True) writes the file anew."""
    from qa.answering.pipeline import load_calibration, save_calibration

    reader = tmp_path / "reader"
    reader.mkdir()
    cal = Calibrator(("span_score",), (0.5,), (0.2,), (2.0,), 0.0)
    save_calibration(0.4, {"calibrator": cal.to_dict(), "bands": [{"name": "High", "min": 0.9}]}, reader, replace=True)
    save_calibration(0.3, {"method": "best threshold"}, reader)
    saved = load_calibration(reader)
    assert saved["threshold"] == 0.3 and saved["method"] == "best threshold"
    assert Calibrator.from_dict(saved["calibrator"]) == cal and saved["bands"][0]["min"] == 0.9
    save_calibration(0.5, {"calibrator": cal.to_dict()}, reader, replace=True)
    assert "method" not in load_calibration(reader) and "bands" not in load_calibration(reader)


def test_a_calibrator_fitted_on_every_candidate_picks_the_right_one():
    """Rows recording their candidates: the reader's first candidate is right only when the question's
    words are in its sentence (overlap 1), whatever its span score. Fitted on every candidate, the
    calibrator learns overlap, picks the right candidate of every row, and says so (picks=True)."""
    feats = lambda score, overlap: {f: 0.0 for f in FEATURES} | {"span_score": score, "overlap": overlap}  # noqa: E731

    def row(first_right: bool):
        right, wrong = {"text": "1932"}, {"text": "Paris"}
        first, second = (right, wrong) if first_right else (wrong, right)
        candidates = [first | {"features": feats(0.8, float(first_right))},
                      second | {"features": feats(0.6, float(not first_right))}]
        return {"features": candidates[0]["features"], "candidate": first["text"], "gold": ["1932"],
                "answerable": True, "source": "t", "candidates": candidates}

    rows = [row(True)] * 30 + [row(False)] * 30
    calibration = fit(rows, target_precision=0.9)
    assert calibration["picks"] is True
    calibrator = Calibrator.from_dict(calibration["calibrator"])
    assert dict(calibrator.weights())["overlap"] > 0
    # Picking: every row answers 1932 (F1 1); the reader's own first candidate is right in half the rows.
    assert measure(rows, calibrator, 0.0, picks=True)["HasAns_f1"] == 1.0
    assert measure(rows, calibrator, 0.0, picks=False)["HasAns_f1"] == 0.5
    # Rows without candidates (older runs) are fitted on their best candidate, and nothing is picked.
    older = [{k: v for k, v in r.items() if k != "candidates"} for r in rows]
    assert fit(older, target_precision=0.9)["picks"] is False


@pytest.mark.integration
def test_a_picking_calibrator_chooses_among_the_readers_candidates(bundled_index, tmp_path: Path):
    """A calibration with picks=true answers with the candidate its calibrator scores highest, not the
    reader's best span: with a calibrator that prefers low span scores, the reader's lowest-scoring
    candidate (read again here from the same passages) is the answer, cited in its own sentence."""
    from qa.answering.pipeline import QA
    from qa.reading.reader import DEFAULT_READER_DIR

    reader = tmp_path / "reader"
    reader.mkdir()
    for f in DEFAULT_READER_DIR.iterdir():
        if f.is_file() and f.name != "calibration.json":
            (reader / f.name).symlink_to(f)
    cal = Calibrator(("span_score",), (0.5,), (0.1,), (-3.0,), 0.0)
    (reader / "calibration.json").write_text(json.dumps({"threshold": 0.0, "calibrator": cal.to_dict(), "picks": True}))
    qa = QA.load(bundled_index, reader=reader)
    question = "When do primary care trusts go live?"
    scored = qa.ask_scored(question)
    answer = scored.answer
    read = qa.reader.read(question, [h.passage for h in answer.hits])
    assert len(read.spans) > 1
    lowest = min(read.spans, key=lambda s: s.score)
    assert answer.text == lowest.text != read.spans[0].text
    assert answer.alternatives[0].text == answer.text
    assert answer.score == pytest.approx(cal.probability(scored.features[0]))
    assert len(scored.features) == len(answer.alternatives)
    assert scored.features[0]["span_score"] == pytest.approx(lowest.score)
    assert " ".join(answer.text.split()) in " ".join(answer.evidence.split())
