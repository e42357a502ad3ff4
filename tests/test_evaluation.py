"""The evaluation runner with a scripted fake pipeline, reader and retriever: metrics worked out by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa.answering.pipeline import Scored
from qa.evaluation.benchmarks import BeirData, build_beir_index, evaluate_beir, evaluate_squad, load_beir, write_trec_run
from qa.evaluation.report import format_table
from qa.evaluation.runner import (
    Question,
    contains_answer,
    evaluate_questions,
    load_questions,
    rethreshold,
    summarize,
    write_outputs,
)
from qa.evaluation.thresholds import (
    Candidate,
    best_threshold,
    calibration_threshold,
    candidate_of,
    f1_at_threshold,
    threshold_sweep,
)
from qa.jsonl import read_jsonl
from qa.types import Answer, Citation, Document, Hit, Passage, Span

# ------------------------------------------------------------------ a tiny corpus, one passage a sentence

TEXT_A = ("Primary care trusts go live in April 2000. They replace primary care groups. "
          "The Warrington pilots integrate a school and a health centre.")
TEXT_B = "Bolton PCT employs 25 case managers. ICATS cuts hospital visits."


def _passages(doc_id: str, text: str) -> list[Passage]:
    out, start = [], 0
    for n, sentence in enumerate(text.split(". ")):
        sentence = sentence if sentence.endswith(".") else sentence + "."
        start = text.index(sentence, start)
        out.append(Passage(f"{doc_id}{n}", doc_id, start, start + len(sentence), sentence))
        start += len(sentence)
    return out


DOCS = {"a": Document("a", "Doc A", "a.txt", TEXT_A), "b": Document("b", "Doc B", "b.txt", TEXT_B)}
PASSAGES = _passages("a", TEXT_A) + _passages("b", TEXT_B)  # a0 a1 a2 b0 b1
BY_ID = {p.id: p for p in PASSAGES}

XSS = "Who wrote <script>alert(1)</script> in the report?"
# question -> (retrieval ranking, {passage id: (span text, score)} the scripted reader finds there)
SCRIPT = {
    "When do PCTs go live?": (["a0", "b0"], {"a0": ("April 2000", 0.9)}),
    "How many case managers does Bolton employ?": (["a1", "b0"], {"b0": ("case managers", 0.6)}),
    "What do the Warrington pilots integrate?": (
        ["b0", "b1"], {"b0": ("25", 0.7), "a2": ("a school and a health centre", 0.8)}),
    XSS: (["a0", "b0"], {"a0": ("April 2000", 0.3)}),
    "What did ICATS cost?": (["b1"], {"b1": ("ICATS", 0.8)}),
}
QUESTIONS = [
    Question("q1", "When do PCTs go live?", ("April 2000",), "a", "factoid"),
    Question("q2", "How many case managers does Bolton employ?", ("25",), "b", "paraphrase"),
    Question("q3", "What do the Warrington pilots integrate?", ("a school and a health centre",), "a", "factoid"),
    Question("q4", XSS, (), None, "unanswerable"),
    Question("q5", "What did ICATS cost?", (), None, "unanswerable"),
]


class FakeRetriever:
    def __init__(self):
        self.index = SimpleNamespace(passages=PASSAGES)
        self.documents = DOCS

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid") -> list[Hit]:
        ranking = SCRIPT[query][0]
        return [Hit(BY_ID[pid], 1.0 / rank, rank) for rank, pid in enumerate(ranking, start=1)][:top_k]


class FakeQA:
    """Shaped like qa.answering.pipeline.QA; the reader finds the scripted span of each passage it is given."""

    def __init__(self, threshold: float = 0.5, bad_quote: str | None = None):
        self.threshold = threshold
        self.retriever = FakeRetriever()
        self.documents = DOCS
        self.bad_quote = bad_quote  # a question whose citation quote is made not verbatim
        self.asked: list[tuple[str, int, str]] = []

    def ask(self, question: str, top_k: int = 5, mode: str = "hybrid", threshold: float | None = None) -> Answer:
        self.asked.append((question, top_k, mode))
        answer = self.answer_from_hits(question, self.retriever.search(question, top_k, mode), threshold)
        answer.timings.update(retrieve_ms=1.0, total_ms=1.0 + answer.timings["read_ms"])
        return answer

    def ask_scored(self, question: str, top_k: int = 5, mode: str = "hybrid",
                   threshold: float | None = None) -> Scored:
        answer = self.ask(question, top_k, mode, threshold)
        return Scored(answer, tuple({"span_score": s.score} for s in answer.alternatives))

    def answer_from_hits(self, question: str, hits, threshold: float | None = None) -> Answer:
        threshold = self.threshold if threshold is None else threshold
        found = SCRIPT[question][1]
        spans = []
        for h in hits:
            if h.passage.id in found:
                text, score = found[h.passage.id]
                start = h.passage.start + h.passage.text.index(text)
                spans.append(Span(text, score, h.passage.doc_id, start, start + len(text), h.passage.id))
        spans.sort(key=lambda s: -s.score)
        best = spans[0] if spans else None
        score = best.score if best else 0.0
        common = dict(question=question, score=score, hits=tuple(hits), alternatives=tuple(spans),
                      timings={"read_ms": 10 * score, "total_ms": 10 * score})
        if best is None or score < threshold:
            return Answer(text=None, abstained=True, evidence="", **common)
        p = next(h.passage for h in hits if h.passage.id == best.passage_id)
        quote = p.text.upper() if question == self.bad_quote else p.text
        citation = Citation(p.doc_id, DOCS[p.doc_id].title, p.start, p.end, quote)
        return Answer(text=best.text, abstained=False, evidence=quote, citations=(citation,), **common)


@pytest.fixture(scope="module")
def result():
    return evaluate_questions(FakeQA(bad_quote="What did ICATS cost?"), QUESTIONS, k=2, mode="bm25")


# ------------------------------------------------------------------ the threshold


def test_threshold_sweep_hand_worked():
    # A answerable, score 0.9, F1 1 if answered; B unanswerable 0.8; C answerable 0.6, F1 0.5; D unanswerable 0.3.
    # Abstain on all: B and D right = 2/4 = 0.5. Then add by score: A +1 -> 3/4; B -1 -> 2/4;
    # C +0.5 -> 2.5/4 = 0.625; D -1 -> 1.5/4 = 0.375. Best: threshold 0.9, 0.75.
    candidates = [Candidate(0.9, 1.0, 0.0), Candidate(0.8, 0.0, 1.0), Candidate(0.6, 0.5, 0.0), Candidate(0.3, 0.0, 1.0)]
    points = threshold_sweep(candidates)
    assert [round(f1, 4) for _, f1 in points] == [0.5, 0.75, 0.5, 0.625, 0.375]
    assert [t for t, _ in points[1:]] == [0.9, 0.8, 0.6, 0.3]
    assert points[0][0] > 0.9  # the first point answers nothing
    assert best_threshold(candidates) == (0.9, 0.75)
    assert f1_at_threshold(candidates, 0.6) == pytest.approx(0.625)
    assert f1_at_threshold(candidates, 0.95) == pytest.approx(0.5)


def test_threshold_sweep_adds_equal_scores_together():
    # Two questions at 0.7: answerable (+1) and unanswerable (-1). One threshold can't split them, so
    # there is one point after both: (1 + 1 - 1) / 2... start 1/2 (the unanswerable abstains), after both 1/2.
    candidates = [Candidate(0.7, 1.0, 0.0), Candidate(0.7, 0.0, 1.0)]
    assert threshold_sweep(candidates)[1:] == [(0.7, 0.5)]
    # The start wins the tie (highest threshold), as in SQuAD's find_best_thresh (strictly greater).
    assert best_threshold(candidates)[1] == 0.5 and best_threshold(candidates)[0] > 0.7


def test_best_threshold_when_abstaining_always_wins_stays_a_probability():
    candidates = [Candidate(1.0, 0.0, 1.0)]  # an unanswerable question answered with certainty
    threshold, f1 = best_threshold(candidates)
    assert f1 == 1.0 and threshold <= 1.0
    with pytest.raises(ValueError):
        best_threshold([])


def test_calibration_threshold_keeps_a_margin_below_the_chosen_score():
    # Best point at 0.9 (as above); the next lower score is 0.8, so the saved threshold is 0.85: rounding it to
    # a few digits can no longer drop the question scored 0.9, and it answers the same questions.
    candidates = [Candidate(0.9, 1.0, 0.0), Candidate(0.8, 0.0, 1.0), Candidate(0.6, 0.5, 0.0), Candidate(0.3, 0.0, 1.0)]
    threshold, f1 = calibration_threshold(candidates)
    assert threshold == pytest.approx(0.85) and f1 == 0.75
    assert f1_at_threshold(candidates, threshold) == f1
    # Best at the lowest score: halfway to 0. Best answering nothing: halfway between the top score and 1.
    assert calibration_threshold([Candidate(0.2, 1.0, 0.0)]) == (pytest.approx(0.1), 1.0)
    assert calibration_threshold([Candidate(0.6, 0.0, 1.0)]) == (pytest.approx(0.8), 1.0)


def test_candidate_of():
    assert candidate_of(["April 2000"], "in April 2000", 0.4) == Candidate(0.4, pytest.approx(0.8), 0.0)
    assert candidate_of([], "April 2000", 0.4) == Candidate(0.4, 0.0, 1.0)  # answering an unanswerable: 0
    assert candidate_of([], "", 0.0) == Candidate(0.0, 1.0, 1.0)  # no span at all: nothing to lose


# ------------------------------------------------------------------ the question-set runner


def test_contains_answer_respects_word_edges():
    assert contains_answer("In April 1998, 88 pilots went live", "88")
    assert not contains_answer("since 1988", "88")
    assert contains_answer("the moving of£600,000 from", "£600,000")  # "£" is not a word character
    assert not contains_answer("community trusts", "community trust")


def test_retrieval_metrics(result):
    r = result.metrics["retrieval"]
    # Gold ranks: q1 [1] (a0), q2 [2] (b0), q3 [] (a2 never retrieved).
    assert r["hit@1"] == pytest.approx(1 / 3)
    assert r["hit@3"] == pytest.approx(2 / 3) and r["hit@10"] == pytest.approx(2 / 3)
    assert r["mrr@10"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    # nDCG@10: q1 1; q2 1/log2(3) = 0.63093; q3 0 -> mean 0.54364
    assert r["ndcg@10"] == pytest.approx(0.54364, abs=1e-5)


def test_answer_abstention_and_error_metrics(result):
    m = result.metrics
    # q1 "April 2000" right; q2 "case managers" vs "25" F1 0; q3 "25" F1 0.
    assert m["answers"] == {"em": pytest.approx(1 / 3), "f1": pytest.approx(1 / 3)}
    # q4 abstains (0.3 < 0.5), q5 answers "ICATS": half the unanswerable refused; no answerable refused.
    assert m["abstention"] == {"unanswerable_refused": 0.5, "answerable_wrongly_refused": 0.0}
    assert m["overall"]["f1"] == pytest.approx(2 / 5)  # q1 and q4 right
    # q2: gold b0 was among the 2 passages read and answered wrongly -> reader error; q3: a2 was not read -> miss.
    assert m["reader"]["errors"] == {"right": 1, "retriever_miss": 1, "refused": 0, "reader_error": 1}
    # On gold passages: q1 1, q2 0 ("case managers" again), q3 1 -> 2/3; retrieved: 1/3.
    assert m["reader"]["gold_passage_f1"] == pytest.approx(2 / 3)
    assert m["reader"]["retrieved_f1"] == pytest.approx(1 / 3)
    # Best spans whatever the threshold: the same here, since every answerable question was answered.
    assert m["reader"]["gold_passage_span_f1"] == pytest.approx(2 / 3)
    assert m["reader"]["retrieved_span_f1"] == pytest.approx(1 / 3)


def test_refusals_are_told_apart_from_misreadings():
    # At threshold 0.95 every question abstains: q1 and q2 read a relevant passage (refused), q3 did not (miss).
    m = evaluate_questions(FakeQA(threshold=0.95), QUESTIONS, k=2).metrics
    assert m["reader"]["errors"] == {"right": 0, "retriever_miss": 1, "refused": 2, "reader_error": 0}
    assert m["abstention"] == {"unanswerable_refused": 1.0, "answerable_wrongly_refused": 1.0}
    assert m["reader"]["gold_passage_f1"] == 0.0 and m["reader"]["gold_passage_span_f1"] == pytest.approx(2 / 3)
    assert m["citations"] is None  # nothing answered, nothing to check


def test_citation_metrics(result):
    # Answered: q1, q2, q3, q5. Every quote holds its answer ("ICATS" is in "ICATS CUTS HOSPITAL VISITS."),
    # but q5's quote is upper-cased, so it is not the document's text at [start:end].
    c = result.metrics["citations"]
    assert c["answered"] == 4
    assert c["verbatim"] == pytest.approx(3 / 4)
    assert c["contains_answer"] == 1.0
    assert c["valid"] == pytest.approx(3 / 4)
    assert result.records[4]["citation"] == {"verbatim": False, "contains_answer": True, "valid": False}
    assert result.records[3]["citation"] is None  # abstained: nothing to check


def test_latency_percentiles(result):
    # read_ms = 10 x score: q1 9, q2 6, q3 7, q4 3, q5 8 -> sorted [3, 6, 7, 8, 9]; p50 7, p95 at 3.8 -> 8.8
    lat = result.metrics["latency_ms"]
    assert lat["read"]["p50"] == pytest.approx(7.0) and lat["read"]["p95"] == pytest.approx(8.8)
    assert lat["total"]["p50"] == pytest.approx(8.0) and lat["retrieve"]["p95"] == pytest.approx(1.0)


def test_by_kind(result):
    by_kind = result.metrics["by_kind"]
    assert set(by_kind) == {"factoid", "paraphrase", "unanswerable"}
    assert by_kind["factoid"]["answers"]["f1"] == pytest.approx(1 / 2)  # q1 1, q3 0
    assert by_kind["factoid"]["retrieval"]["hit@1"] == pytest.approx(1 / 2)
    assert by_kind["unanswerable"]["retrieval"] is None and by_kind["unanswerable"]["answers"] is None
    assert by_kind["unanswerable"]["abstention"]["unanswerable_refused"] == 0.5


def test_threshold_section_and_rethreshold(result):
    # Candidates (score, if answered, if abstained): q1 (0.9, 1, 0), q2 (0.6, 0, 0), q3 (0.7, 0, 0),
    # q4 (0.3, 0, 1), q5 (0.8, 0, 1). Start 2/5; 0.9 -> 3/5; 0.8 -> 2/5; 0.7, 0.6 -> 2/5; 0.3 -> 1/5.
    t = result.metrics["threshold"]
    assert t["current"] == 0.5 and t["current_overall_f1"] == pytest.approx(0.4)
    assert (t["best"], t["best_overall_f1"]) == (0.9, pytest.approx(0.6))
    after = summarize(rethreshold(result.records, 0.9))
    assert after["overall"]["f1"] == pytest.approx(0.6)
    assert after["abstention"] == {"unanswerable_refused": 1.0, "answerable_wrongly_refused": pytest.approx(2 / 3)}


def test_runner_uses_the_pipeline_as_the_app_does():
    qa = FakeQA()
    evaluate_questions(qa, QUESTIONS, k=2, mode="bm25")
    # One warm-up, then every question once, with the run's k and mode.
    assert [q for q, _, _ in qa.asked] == [QUESTIONS[0].question] + [q.question for q in QUESTIONS]
    assert {(k, mode) for _, k, mode in qa.asked} == {(2, "bm25")}


def test_runner_rejects_questions_about_unknown_documents():
    with pytest.raises(ValueError, match="index lacks"):
        evaluate_questions(FakeQA(), [Question("x", "When do PCTs go live?", ("April 2000",), "zzz", "factoid")])


def test_outputs_predictions_metrics_and_escaped_report(result, tmp_path):
    paths = write_outputs(result, tmp_path / "out")
    rows = read_jsonl(paths["predictions"])
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4", "q5"]
    for r in rows:
        assert {"id", "answer", "abstained", "score", "citations", "passages"} <= set(r)
        assert all({"rank", "doc_id", "start", "end"} <= set(p) for p in r["passages"])
    assert rows[3]["answer"] is None and rows[3]["abstained"] is True and rows[3]["citations"] == []
    assert rows[0]["citations"][0]["quote"] == "Primary care trusts go live in April 2000."
    metrics = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert metrics["answers"]["f1"] == pytest.approx(1 / 3)
    report = paths["report"].read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "<script" not in report.lower()  # self-contained and script-free
    assert report.count('src="data:image/png;base64,') == 6  # by kind, scores, sweep, risk-coverage, reliability, latency


def test_format_table_lists_kinds(result):
    table = format_table(result.metrics)
    assert table.splitlines()[0].split() == ["all", "factoid", "paraphrase", "unanswerable"]
    assert "0.333" in next(line for line in table.splitlines() if line.startswith("F1 "))


def test_load_questions_reports_the_bad_line(tmp_path):
    good = {"id": "a", "question": "Q?", "answers": ["x"], "doc_id": "d", "kind": "factoid"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "kind": "unanswerable"}) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        load_questions(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="duplicate id"):
        load_questions(path)
    with pytest.raises(FileNotFoundError):
        load_questions(tmp_path / "missing.jsonl")


def _cli_args(argv: list[str]) -> argparse.Namespace:
    from qa.cli import build_parser

    return build_parser(["eval"]).parse_args(["eval", *argv])


def test_cli_runs_the_question_set_and_prints_json(tmp_path, monkeypatch, capsys):
    import qa.answering.pipeline

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                             "doc_id": q.doc_id, "kind": q.kind}) + "\n" for q in QUESTIONS))
    monkeypatch.setattr(qa.answering.pipeline.QA, "load", classmethod(lambda cls, *a, threshold=None, **kw: FakeQA(threshold or 0.5)))
    monkeypatch.setattr(FakeQA, "reader", SimpleNamespace(path="fake"), raising=False)
    args = _cli_args(["--questions", str(questions), "--out", str(tmp_path / "out"), "-k", "2", "--json", "--quiet"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["answers"]["f1"] == pytest.approx(1 / 3) and printed["config"]["k"] == 2
    assert (tmp_path / "out" / "report.html").is_file()


def test_cli_calibrate_saves_the_best_threshold_and_prints_before_after(tmp_path, monkeypatch, capsys):
    import qa.answering.pipeline

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                             "doc_id": q.doc_id, "kind": q.kind}) + "\n" for q in QUESTIONS))
    saved = {}
    monkeypatch.setattr(qa.answering.pipeline.QA, "load", classmethod(lambda cls, *a, threshold=None, **kw: FakeQA(0.5)))
    monkeypatch.setattr(FakeQA, "reader", SimpleNamespace(path="fake"), raising=False)
    monkeypatch.setattr(qa.answering.pipeline, "save_calibration",
                        lambda threshold, details, reader_dir, allow_packaged=False:
                        saved.update(threshold=threshold, **details) or tmp_path / "cal.json")
    args = _cli_args(["--questions", str(questions), "--out", str(tmp_path / "out"), "-k", "2", "--calibrate", "--quiet"])
    assert args.func(args) == 0
    # The sweep worked out in test_threshold_section_and_rethreshold: best 0.9, overall F1 0.4 -> 0.6;
    # saved halfway to the next lower score (q5's 0.8): 0.85.
    assert saved["threshold"] == pytest.approx(0.85) and saved["previous_threshold"] == 0.5
    assert saved["before"]["overall_f1"] == pytest.approx(0.4) and saved["after"]["overall_f1"] == pytest.approx(0.6)
    out = capsys.readouterr().out
    assert "0.5000 -> 0.8500" in out and "overall_f1" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["calibration"]["threshold"] == pytest.approx(0.85)


# ------------------------------------------------------------------ SQuAD


class FakeReader:
    """Returns the scripted (text, score) of each question, or no span."""

    def __init__(self, script: dict[str, tuple[str, float] | None]):
        self.script = script
        self.calls = 0

    def read(self, question, passages, top_n=5):
        self.calls += 1
        (p,) = passages
        assert (p.doc_id, p.start, p.end) == ("ctx", 0, len(p.text))
        found = self.script[question]
        spans = [] if found is None else [Span(found[0], found[1], "ctx", 0, len(found[0]), p.id)]
        return SimpleNamespace(spans=spans, no_answer_score=0.1)


def _squad_examples():
    from qa.squad import SquadExample

    ctx = "The Normans were in Normandy in the 10th and 11th centuries."
    return [
        SquadExample("s1", "T", ctx, "Where were the Normans?", (("Normandy", 20), ("in Normandy", 17)), "f"),
        SquadExample("s2", "T", ctx, "When were they there?", (("10th and 11th centuries", 36),), "f"),
        SquadExample("s3", "T", ctx, "Who beat the Normans?", (), "f"),
    ]


def test_squad_v2_metrics_hand_worked():
    reader = FakeReader({"Where were the Normans?": ("Normandy", 0.9), "When were they there?": ("11th centuries", 0.4),
                         "Who beat the Normans?": ("The Normans", 0.6)})
    metrics, predictions = evaluate_squad(reader, _squad_examples(), threshold=0.5)
    # s1 "Normandy" EM 1; s2 0.4 < 0.5 -> "" -> 0; s3 0.6 >= 0.5 answers an unanswerable -> 0.
    assert predictions == {"s1": "Normandy", "s2": "", "s3": "The Normans"}
    assert metrics["exact"] == pytest.approx(100 / 3) and metrics["f1"] == pytest.approx(100 / 3)
    assert metrics["HasAns_exact"] == 50.0 and metrics["HasAns_total"] == 2
    assert metrics["NoAns_exact"] == 0.0 and metrics["NoAns_total"] == 1
    # Best threshold: start 1/3 (s3 abstains); 0.9 s1 +1 -> 2/3; 0.6 s3 -1 -> 1/3;
    # 0.4 s2 "11th centuries" vs "10th and 11th centuries": P 2/2, R 2/4, F1 2/3 -> (1 + 2/3) / 3 = 0.5556.
    assert metrics["best_f1"] == pytest.approx(200 / 3) and metrics["best_f1_thresh"] == 0.9
    assert reader.calls == 4  # a warm-up, then one batch per question


def test_squad_v11_reports_has_ans_only_and_never_abstains():
    examples = _squad_examples()[:2]
    reader = FakeReader({"Where were the Normans?": ("Normandy", 0.9), "When were they there?": ("11th centuries", 0.1)})
    metrics, predictions = evaluate_squad(reader, examples, threshold=None)
    assert predictions["s2"] == "11th centuries"
    assert "exact" not in metrics and "NoAns_exact" not in metrics
    assert metrics["HasAns_exact"] == 50.0
    assert metrics["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


# ------------------------------------------------------------------ BEIR


def _write_beir(root: Path) -> Path:
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Domestic cats sleep fifteen hours a day and purr."},
        {"_id": "d2", "title": "Rockets", "text": "A rocket engine burns propellant to produce thrust."},
        {"_id": "doc/3", "title": "Bread", "text": "Yeast ferments sugar and makes the dough rise."},
    ]
    queries = [{"_id": "q1", "text": "how long do cats sleep"}, {"_id": "q2", "text": "yeast dough"},
               {"_id": "q3", "text": "unjudged"}]
    root.mkdir(parents=True)
    (root / "qrels").mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tdoc/3\t2\nq2\td2\t1\n")
    return root


def test_load_beir(tmp_path):
    data = load_beir(_write_beir(tmp_path / "beir"))
    assert set(data.queries) == {"q1", "q2"}  # only judged queries
    assert data.qrels["q2"] == {"doc/3": 2, "d2": 1}
    assert data.corpus["d1"][0] == "Cats"
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(tmp_path)


def test_evaluate_beir_maps_passages_to_documents_by_best_score():
    data = BeirData({}, {"q": "query"}, {"q": {"D1": 1, "D2": 1}})
    passages = {pid: Passage(pid, doc, 0, 1, "x") for pid, doc in [("p1", "f2"), ("p2", "f9"), ("p3", "f2"), ("p4", "f1")]}

    class Scripted:
        def search(self, query, top_k=5, mode="hybrid"):
            ranked = [("p1", 0.9), ("p2", 0.8), ("p3", 0.7), ("p4", 0.6)]
            return [Hit(passages[p], s, i) for i, (p, s) in enumerate(ranked, start=1)][:top_k]

    metrics, runs = evaluate_beir(Scripted(), data, modes=["dense"], doc_ids={"f1": "D1", "f2": "D2", "f9": "D9"})
    # Documents: D2 (0.9, its second passage 0.7 dropped), D9 (0.8), D1 (0.6) -> [rel, non, rel]:
    # DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) = 1.63093, nDCG@10 = 0.91972; recall@100 = 2/2.
    assert runs["dense"]["q"] == [("D2", 0.9), ("D9", 0.8), ("D1", 0.6)]
    assert metrics["dense"]["ndcg@10"] == pytest.approx(0.91972, abs=1e-5)
    assert metrics["dense"]["recall@100"] == 1.0
    with pytest.raises(ValueError, match="Unknown retrieval mode"):
        evaluate_beir(Scripted(), data, modes=["sparse"])


def test_beir_index_and_run_end_to_end_with_a_fake_encoder(tmp_path, fake_encoder):
    from qa.retrieval.retriever import Retriever

    data = load_beir(_write_beir(tmp_path / "beir"))
    ids = build_beir_index(data, tmp_path / "out", encoder=fake_encoder)
    assert set(ids.values()) == {"d1", "d2", "doc/3"} and "doc/3" not in ids  # unsafe id stored under a hash
    retriever = Retriever.load(tmp_path / "out" / "index", encoder=fake_encoder)
    metrics, runs = evaluate_beir(retriever, data, modes=["bm25", "hybrid"], doc_ids=ids, passages=10)
    # q1 -> d1 first (the only document about cats); q2 -> doc/3 first (grade 2), d2 (grade 1) not retrieved by bm25.
    assert runs["bm25"]["q1"][0][0] == "d1" and runs["bm25"]["q2"][0][0] == "doc/3"
    assert metrics["bm25"]["queries"] == 2
    # q1 nDCG 1; q2 [doc/3] only: DCG = 2, IDCG = 2 + 1/log2(3) = 2.63093 -> 0.76019; mean 0.88009
    assert metrics["bm25"]["ndcg@10"] == pytest.approx(0.88009, abs=1e-5)
    path = write_trec_run(tmp_path / "run.tsv", runs["bm25"], "qa-bm25")
    first = path.read_text().splitlines()[0].split(" ")
    assert first[:4] == ["q1", "Q0", "d1", "1"] and first[5] == "qa-bm25" and len(first) == 6
    # A second build re-embeds nothing.
    fake_encoder.reset()
    build_beir_index(data, tmp_path / "out", encoder=fake_encoder)
    assert fake_encoder.passage_count == 0


def test_selective_measures_in_the_summary(result):
    """The summary carries AURC, ECE and coverage at 90/95% precision of the best candidates, and
    they agree with the selective module run on the same (score, right) pairs."""
    from qa.evaluation import selective
    from qa.evaluation.common import candidate_right

    scores = [r["score"] for r in result.records]
    right = [candidate_right(r) for r in result.records]
    assert result.metrics["selective"] == selective.summary(scores, right)
    # An unanswerable question's candidate is never right, whatever it says.
    assert not any(candidate_right(r) for r in result.records if not r["answers"])
