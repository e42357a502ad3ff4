"""The open-corpus runner: a SQuAD file becomes documents, an index, and questions through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.errors import UnsafeDestination
from qa.evaluation.open_corpus import evaluate_open_corpus, summarize
from qa.squad import write_corpus

ARTICLES = [
    {"title": "Harbour_Bridge", "paragraphs": [
        {"context": "The Harbour Bridge opened in 1932. It was designed by John Bradfield.",
         "qas": [{"id": "q1", "question": "When did the Harbour Bridge open?",
                  "answers": [{"text": "1932", "answer_start": 29}]},
                 {"id": "q2", "question": "Who designed the Harbour Bridge?",
                  "answers": [{"text": "John Bradfield", "answer_start": 54}]}]},
        {"context": "Its arch spans 503 metres across the harbour.",
         "qas": [{"id": "q3", "question": "How long is the span of the Harbour Bridge arch?",
                  "answers": [{"text": "503 metres", "answer_start": 15}]},
                 {"id": "q4", "question": "Who painted the Harbour Bridge in 1990?", "answers": [],
                  "is_impossible": True}]},
    ]},
    {"title": "Tea", "paragraphs": [
        {"context": "Green tea is made from leaves that are not oxidised. Most green tea comes from China.",
         "qas": [{"id": "q5", "question": "Where does most green tea come from?",
                  "answers": [{"text": "China", "answer_start": 79}]}]},
    ]},
]


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"version": "v2.0", "data": ARTICLES}), encoding="utf-8")
    return path


def test_corpus_places_every_gold_answer_exactly(squad_file: Path, tmp_path: Path):
    questions = write_corpus([squad_file], tmp_path / "docs")
    files = sorted(p.name for p in (tmp_path / "docs").glob("*.txt"))
    assert len(files) == 2 and files[0].endswith("Harbour_Bridge.txt")
    by_id = {q.id: q for q in questions}
    assert set(by_id) == {"q1", "q2", "q3", "q4", "q5"}
    for qid, gold in [("q1", "1932"), ("q2", "John Bradfield"), ("q3", "503 metres"), ("q5", "China")]:
        q = by_id[qid]
        text = (tmp_path / "docs" / f"{q.doc_id}.txt").read_text(encoding="utf-8")
        (start, end), = q.spans
        assert text[start:end] == gold  # the oracle: the answer text given in the file
        assert text[q.context_start:q.context_start + len(q.context)] == q.context
    assert by_id["q4"].answers == () and by_id["q4"].spans == ()
    assert (tmp_path / "docs" / f"{by_id['q1'].doc_id}.txt").read_text().startswith("Harbour Bridge\n\n")


def test_corpus_never_writes_over_other_files(squad_file: Path, tmp_path: Path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UnsafeDestination):
        write_corpus([squad_file], foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    # Its own folder is rewritten, and a file the user added there is left alone.
    ours = tmp_path / "ours"
    write_corpus([squad_file], ours)
    (ours / "extra.md").write_text("user file")
    write_corpus([squad_file], ours)
    assert (ours / "extra.md").read_text() == "user file"


def test_summary_by_hand():
    rows = [
        # answerable, answered right at rank 1
        {"answerable": True, "gold": ["1932"], "em": 1.0, "f1": 1.0, "abstained": False, "candidate": "1932",
         "candidate_right": True, "rank": 1, "ms": 10.0, "score": 0.9},
        # answerable, refused (candidate was right), gold at rank 3
        {"answerable": True, "gold": ["China"], "em": 0.0, "f1": 0.0, "abstained": True, "candidate": "China",
         "candidate_right": True, "rank": 3, "ms": 20.0, "score": 0.2},
        # unanswerable, refused: right
        {"answerable": False, "gold": [], "em": 1.0, "f1": 1.0, "abstained": True, "candidate": "Paul",
         "candidate_right": False, "rank": None, "ms": 30.0, "score": 0.1},
    ]
    m = summarize(rows)
    assert m["exact"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["HasAns_f1"] == 0.5 and m["NoAns_refused"] == 1.0 and m["answerable_refused"] == 0.5
    assert m["HasAns_f1_always_answer"] == 1.0  # both candidates were right
    assert m["hit@1"] == 0.5 and m["hit@5"] == 1.0 and m["ms_p50"] == 20.0
    # Ordered by score: right (0.9), right (0.2), wrong (0.1): precision 1 up to coverage 2/3.
    assert m["selective"]["coverage@95"] == pytest.approx(2 / 3)


@pytest.mark.integration
def test_whole_pipeline_on_a_tiny_file(squad_file: Path, tmp_path: Path):
    metrics, rows = evaluate_open_corpus(squad_file, tmp_path / "run", gold_passage=True)
    assert metrics["questions"] == 5 and metrics["documents"] == 2
    by_id = {r["id"]: r for r in rows}
    # Retrieval over both articles finds each answer's paragraph in the top 5 of a 2-document corpus.
    assert metrics["hit@5"] == 1.0
    # The easy factoid questions are read right from the retrieved passages, and cited in their article.
    for qid in ("q1", "q5"):
        assert by_id[qid]["candidate_right"], by_id[qid]
        if not by_id[qid]["abstained"]:
            assert by_id[qid]["citation"].endswith("Harbour_Bridge" if qid == "q1" else "Tea")
    assert metrics["gold_passage_f1"] >= 0.75
    assert 0.0 <= metrics["f1"] <= 1.0 and len(metrics["risk_coverage"]) >= 1


def test_dpr_style_files_become_articles(tmp_path: Path):
    rows = [
        {"question": "how long should adults sleep?", "answers": ["seven to nine hours"],
         "ctxs": [{"id": "s:1", "title": "sleep needs", "text": "adults need seven to nine hours of sleep."}]},
        {"question": "what is rem?", "answers": ["rapid eye movement"],
         "ctxs": [{"id": "s:2", "title": "sleep needs", "text": "rem means rapid eye movement sleep."}]},
        {"question": "not found?", "answers": ["absent words"],
         "ctxs": [{"id": "s:3", "title": "other", "text": "nothing here."}]},
    ]
    path = tmp_path / "dpr.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    questions = write_corpus([path], tmp_path / "docs")
    # Two passages of one title make one article; the question whose answer isn't in its passage is left out.
    assert sorted(p.name for p in (tmp_path / "docs").glob("*.txt")) == ["000000_sleep_needs.txt", "000001_other.txt"]
    assert [q.answers for q in questions] == [("seven to nine hours",), ("rapid eye movement",)]
    text = (tmp_path / "docs" / "000000_sleep_needs.txt").read_text()
    assert [text[s:e] for q in questions for s, e in q.spans] == ["seven to nine hours", "rapid eye movement"]


def test_cli_refuses_open_with_data_or_calibrate(squad_file: Path, capsys):
    from qa.cli import main

    for argv, refusal in ((["--data", str(squad_file)], "argument --data: not allowed with argument --open"),
                          (["--calibrate"], "unrecognized arguments: --calibrate")):
        with pytest.raises(SystemExit) as exit_:
            main(["eval", "squad", "--open", str(squad_file), *argv])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.startswith(f"qa eval squad: error: {refusal}")
    assert main(["eval", "squad", "--open", "/nonexistent/file.json"]) == 2
    assert capsys.readouterr().err.startswith("qa: error: No such file")


@pytest.mark.integration
def test_cli_open_corpus_writes_metrics_and_predictions(squad_file: Path, tmp_path: Path, capsys):
    from qa.cli import main

    out = tmp_path / "open"
    assert main(["eval", "squad", "--open", str(squad_file), "--out", str(out), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert printed["questions"] == saved["questions"] == 5
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["q1", "q2", "q3", "q4", "q5"]
