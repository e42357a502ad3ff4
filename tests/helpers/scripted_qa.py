"""A scripted pipeline for the evaluation tests: two tiny documents, one passage a sentence, and for each
question a fixed retrieval ranking and the spans the reader finds, so every metric can be worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

from qa.answering.pipeline import Scored
from qa.evaluation.runner import Question
from qa.types import Answer, Citation, Document, Hit, Passage, Span

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

