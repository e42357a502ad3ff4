"""BEIR scoring keeps the retriever's order: Milvus Lite returns BM25 scores negated (best first, most
negative), so re-sorting a run by score reversed it (SciFact BM25 nDCG@10 0.003 instead of 0.66)."""

from __future__ import annotations

from qa.evaluation.benchmarks import BeirData, evaluate_beir
from qa.types import Hit, Passage


class _Ranked:
    """A retriever returning fixed hits, best first, with the scores a store gave them."""

    def __init__(self, scores: list[float]):
        self.hits = [Hit(Passage(f"d{i}:0-1", f"d{i}", 0, 1, "x"), s, i + 1) for i, s in enumerate(scores)]

    def search(self, query, top_k=10, mode="hybrid"):
        return self.hits[:top_k]


def test_run_follows_the_retrievers_order_whatever_the_scores():
    data = BeirData(corpus={f"d{i}": ("", "x") for i in range(3)}, queries={"q": "x"}, qrels={"q": {"d0": 1}})
    for scores in ([3.0, 2.0, 1.0], [-29.1, -26.3, -25.2]):  # bm25s; Milvus Lite (negated)
        metrics, runs = evaluate_beir(_Ranked(scores), data, ["bm25"])
        assert [doc for doc, _ in runs["bm25"]["q"]] == ["d0", "d1", "d2"]
        assert metrics["bm25"]["ndcg@10"] == 1.0  # the one relevant document first


def test_a_document_ranks_by_its_first_passage():
    hits = [Hit(Passage(p, p.split(":")[0], 0, 1, "x"), s, r)
            for r, (p, s) in enumerate([("a:0-1", 0.9), ("b:0-1", 0.8), ("a:2-3", 0.7)], start=1)]

    class Retriever:
        def search(self, query, top_k=10, mode="hybrid"):
            return hits

    data = BeirData(corpus={"a": ("", "x"), "b": ("", "x")}, queries={"q": "x"}, qrels={"q": {"b": 1}})
    _, runs = evaluate_beir(Retriever(), data, ["dense"])
    assert runs["dense"]["q"] == [("a", 0.9), ("b", 0.8)]
