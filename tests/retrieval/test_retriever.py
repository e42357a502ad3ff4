"""Retriever: reciprocal rank fusion, the three modes, the document filter and bad inputs (fake encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.stores.local.build import build_index
from qa.retrieval.retriever import CANDIDATES, MODES, Retriever, reciprocal_rank_fusion

# Reciprocal rank fusion ---------------------------------------------------------------------------


def test_rrf_against_values_worked_out_by_hand():
    # Two rankings of ids, k = 60; score(d) = sum of 1 / (60 + rank):
    #   id 1: ranks 1 and 2 -> 1/61 + 1/62 = 0.01639344 + 0.01612903 = 0.03252247
    #   id 3: ranks 3 and 1 -> 1/63 + 1/61 = 0.01587302 + 0.01639344 = 0.03226646
    #   id 2: rank 2 only   -> 1/62        = 0.01612903
    #   id 4: rank 3 only   -> 1/63        = 0.01587302
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [doc for doc, _ in fused] == [1, 3, 2, 4]
    assert [score for _, score in fused] == pytest.approx([0.03252247, 0.03226646, 0.01612903, 0.01587302], abs=1e-8)


def test_rrf_default_constant_is_60():
    assert reciprocal_rank_fusion([[7]]) == [(7, 1 / 61)]


def test_rrf_ties_are_broken_by_best_rank_then_id():
    # ids 5 and 6 both score 1/61 + 1/62 and both have best rank 1: the smaller id first.
    assert [d for d, _ in reciprocal_rank_fusion([[6, 5], [5, 6]])] == [5, 6]
    # ids 8 and 9 both score 1/62; 9 is never better than rank 2 either: the smaller id first.
    # id 3 (1/61 + 1/63 = 0.03226646) beats id 8 and 9; id 1 (1/63) comes last.
    assert [d for d, _ in reciprocal_rank_fusion([[3, 9, 1], [8, 3]])] == [3, 8, 9, 1]


def test_rrf_of_nothing_is_empty():
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []


# Modes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "query, doc_id",
    [
        ("How many hours a day do cats sleep?", "animals/cats"),
        ("Which rocket carried astronauts to the Moon?", "space/rockets"),
        ("What does a barometer measure?", "weather"),
        ("What makes sourdough bread rise?", "kitchen/bread"),
    ],
)
def test_each_mode_finds_the_right_document(tiny_retriever, mode, query, doc_id):
    hits = tiny_retriever.search(query, top_k=3, mode=mode)
    assert hits[0].passage.doc_id == doc_id
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_dense_scores_are_inner_products_of_the_encoder(tiny_retriever, fake_encoder):
    query = "Kittens open their eyes"
    hits = tiny_retriever.search(query, top_k=4, mode="dense")
    q = fake_encoder.embed([query])[0]
    for hit in hits:
        assert hit.score == pytest.approx(float(q @ fake_encoder.embed([hit.passage.text])[0]), abs=1e-5)


def test_hybrid_is_the_rrf_of_dense_and_bm25(tiny_retriever):
    query = "rocket engine burns liquid oxygen propellant"
    n = len(tiny_retriever.index.passages)
    assert n < CANDIDATES  # so each retriever's candidate list is its full ranking
    rows = {p.id: i for i, p in enumerate(tiny_retriever.index.passages)}
    dense = [rows[h.passage.id] for h in tiny_retriever.search(query, top_k=CANDIDATES, mode="dense")]
    sparse = [rows[h.passage.id] for h in tiny_retriever.search(query, top_k=CANDIDATES, mode="bm25")]
    expected = reciprocal_rank_fusion([dense, sparse])[:5]
    hits = tiny_retriever.search(query, top_k=5, mode="hybrid")
    assert [rows[h.passage.id] for h in hits] == [i for i, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected])


def test_bm25_ignores_words_not_in_the_corpus(tiny_retriever):
    assert tiny_retriever.search("xylophone zeppelin", mode="bm25") == []
    assert tiny_retriever.search("the of and", mode="bm25") == []  # stop words only
    # Dense and hybrid still answer with something.
    assert tiny_retriever.search("xylophone zeppelin", mode="hybrid")


def test_bm25_hits_all_contain_a_query_term(tiny_retriever):
    hits = tiny_retriever.search("thunder", top_k=50, mode="bm25")
    assert hits and all("thunder" in h.passage.text.lower() for h in hits)


# Document filter ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_doc_ids_filter_keeps_only_those_documents(tiny_retriever, mode):
    # The query is about cats, but only the weather and bread documents may answer.
    allowed = ["weather", "kitchen/bread"]
    hits = tiny_retriever.search("cats sleep and purr, storm and bread", top_k=50, mode=mode, doc_ids=allowed)
    assert hits and {h.passage.doc_id for h in hits} <= set(allowed)
    assert len({h.passage.id for h in hits}) == len(hits)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_doc_ids_filter_with_top_k_above_its_passages(tiny_retriever, mode):
    wanted = [p.id for p in tiny_retriever.index.passages if p.doc_id == "weather"]
    hits = tiny_retriever.search("weather", top_k=100, mode=mode, doc_ids=["weather"])
    assert sorted(h.passage.id for h in hits) == sorted(wanted)


def test_duplicate_doc_ids_give_no_duplicate_hits(tiny_retriever):
    hits = tiny_retriever.search("storm", top_k=100, mode="hybrid", doc_ids=["weather", "weather"])
    assert len({h.passage.id for h in hits}) == len(hits) > 0


def test_doc_ids_filter_on_an_approximate_index(tiny_corpus, tmp_path, fake_encoder, small_chunks):
    build_index(tiny_corpus, tmp_path / "hnsw", encoder=fake_encoder, chunk_config=small_chunks, approximate=True)
    retriever = Retriever.load(tmp_path / "hnsw", encoder=fake_encoder)
    assert retriever.search("rocket", mode="dense")[0].passage.doc_id == "space/rockets"
    hits = retriever.search("rocket", top_k=10, mode="dense", doc_ids=["animals/cats"])
    assert hits and {h.passage.doc_id for h in hits} == {"animals/cats"}


# Bad and extreme inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t \r\n", None, 42])
def test_empty_or_non_text_query_is_refused(tiny_retriever, query):
    with pytest.raises(ValueError, match="empty"):
        tiny_retriever.search(query)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True, "5"])
def test_bad_top_k_is_refused(tiny_retriever, top_k):
    with pytest.raises(ValueError, match="top_k"):
        tiny_retriever.search("cats", top_k=top_k)


@pytest.mark.parametrize("mode", ["sparse", "HYBRID", "", None])
def test_unknown_mode_is_refused(tiny_retriever, mode):
    with pytest.raises(ValueError, match="mode"):
        tiny_retriever.search("cats", mode=mode)


@pytest.mark.parametrize("doc_ids", [["nope"], ["weather", "nope"], []])
def test_unknown_doc_id_is_refused(tiny_retriever, doc_ids):
    with pytest.raises(ValueError, match="document id"):
        tiny_retriever.search("cats", doc_ids=doc_ids)


@pytest.mark.parametrize("mode", MODES)
def test_a_100_kb_query_works(tiny_retriever, fake_encoder, mode):
    from qa.answering.question import check_question

    query = "How long do domestic cats sleep each day? " * 2500  # 105,000 characters
    assert len(query) > 100_000
    # Searched as it is checked where a request enters (qa search, QA.ask): cut there, once.
    hits = tiny_retriever.search(check_question(query), top_k=3, mode=mode)
    assert hits[0].passage.doc_id == "animals/cats"
    # The encoder is not handed the whole 100 KB.
    assert all(len(q) <= 4096 for q in fake_encoder.queries_encoded)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_top_k_above_the_corpus_returns_every_passage(tiny_retriever, mode):
    n = len(tiny_retriever.index.passages)
    hits = tiny_retriever.search("cats", top_k=n + 1000, mode=mode)
    assert sorted(h.passage.id for h in hits) == sorted(p.id for p in tiny_retriever.index.passages)
    assert [h.rank for h in hits] == list(range(1, n + 1))


def test_top_k_above_the_corpus_in_bm25_returns_every_matching_passage(tiny_retriever):
    hits = tiny_retriever.search("yeast", top_k=10_000, mode="bm25")
    assert sorted(h.passage.id for h in hits) == sorted(
        p.id for p in tiny_retriever.index.passages if "yeast" in p.text.lower()
    )


def test_load_refuses_an_index_of_another_model(tiny_index):
    from helpers.fakes import FakeEncoder

    from qa import StaleIndexError

    with pytest.raises(StaleIndexError):
        Retriever.load(tiny_index, encoder=FakeEncoder(name="another-model"))


def test_query_encoder_is_the_model_and_backend_of_the_manifest(tiny_index, monkeypatch):
    import json

    import qa.retrieval.retriever as retriever_module
    from helpers.fakes import FakeEncoder

    manifest_file = tiny_index / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["backend"] = "onnx"
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    asked = []
    monkeypatch.setattr(retriever_module, "load_encoder",
                        lambda model, backend: asked.append((model, backend)) or FakeEncoder(name=model))
    Retriever.load(tiny_index)
    assert asked == [("fake-bow", "onnx")]


def test_documents_are_those_of_the_index(tiny_retriever):
    assert set(tiny_retriever.documents) == {"animals/cats", "space/rockets", "kitchen/bread", "weather"}


def test_relevance_is_the_best_dense_score(tiny_retriever):
    best = tiny_retriever.search("Whiskers help cats judge gaps", top_k=1, mode="dense")[0]
    assert tiny_retriever.relevance("Whiskers help cats judge gaps") == pytest.approx(best.score)
    assert tiny_retriever.relevance("xylophone zeppelin") < best.score


# Errors a user can fix, and the store interface ----------------------------------------------------


@pytest.mark.parametrize("doc_ids", ["weather", "animals/cats", {"weather"}, b"weather", [1]])
def test_doc_ids_must_be_a_list(tiny_retriever, doc_ids):
    from qa.errors import InvalidInput

    with pytest.raises(InvalidInput, match="doc_ids must be a list of document ids"):
        tiny_retriever.search("cats", doc_ids=doc_ids)


@pytest.mark.parametrize("kwargs", [{"query": ""}, {"query": "cats", "top_k": 0}, {"query": "cats", "mode": "x"},
                                    {"query": "cats", "doc_ids": ["nope"]}])
def test_bad_arguments_are_invalid_input(tiny_retriever, kwargs):
    from qa.errors import InvalidInput

    with pytest.raises(InvalidInput):
        tiny_retriever.search(**kwargs)


class ListStore:
    """A store of the :class:`qa.stores.base.Store` protocol over plain lists, searched by brute force."""

    def __init__(self, passages, documents, vectors, manifest):
        self.passages, self.documents, self.vectors, self.manifest = passages, documents, vectors, manifest

    def _rows(self, doc_ids):
        return [i for i, p in enumerate(self.passages) if doc_ids is None or p.doc_id in doc_ids]

    def dense_search(self, query_vector, k, doc_ids=None):
        rows = self._rows(doc_ids)
        scores = self.vectors[rows] @ np.asarray(query_vector).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(rows[j], float(scores[j])) for j in order]

    def keyword_search(self, query_text, k, doc_ids=None):
        words = set(query_text.lower().split())
        scored = [(i, float(len(words & set(self.passages[i].text.lower().split())))) for i in self._rows(doc_ids)]
        return sorted([s for s in scored if s[1] > 0], key=lambda s: (-s[1], s[0]))[:k]


def test_the_retriever_talks_to_any_store(tiny_retriever, fake_encoder):
    from qa.stores.base import Store

    index = tiny_retriever.index
    assert isinstance(index, Store)
    store = ListStore(index.passages, index.documents, fake_encoder.embed([p.text for p in index.passages]),
                      index.manifest)
    assert isinstance(store, Store)
    retriever = Retriever(store, encoder=fake_encoder)
    query = "rocket engine burns liquid oxygen propellant"
    dense = [i for i, _ in store.dense_search(fake_encoder.embed([query])[0], CANDIDATES)]
    sparse = [i for i, _ in store.keyword_search(query, CANDIDATES)]
    expected = reciprocal_rank_fusion([dense, sparse])[:5]
    hits = retriever.search(query, top_k=5)
    assert [h.passage for h in hits] == [store.passages[i] for i, _ in expected]
    hits = retriever.search(query, top_k=50, mode="bm25", doc_ids=["weather"])
    assert {h.passage.doc_id for h in hits} <= {"weather"}


@pytest.mark.parametrize("doc_ids", [None, ["weather", "kitchen/bread"]])
def test_local_dense_search_equals_brute_force(tiny_retriever, fake_encoder, doc_ids):
    index = tiny_retriever.index
    vectors = fake_encoder.embed([p.text for p in index.passages])
    query = fake_encoder.embed(["storm pressure and yeast"])[0]
    rows = [i for i, p in enumerate(index.passages) if doc_ids is None or p.doc_id in doc_ids]
    scores = vectors[rows] @ query
    want = [rows[j] for j in np.argsort(-scores, kind="stable")[:5]]
    got = index.dense_search(query, 5, doc_ids=doc_ids)
    assert [i for i, _ in got] == want
    assert [s for _, s in got] == pytest.approx(sorted(scores, reverse=True)[:5], abs=1e-5)


def test_the_retriever_holds_no_search_engine_code():
    import inspect

    import qa.retrieval.retriever as retriever_module

    source = inspect.getsource(retriever_module)
    assert "faiss" not in source and "bm25" not in source.replace("\"bm25\"", "")


def test_hybrid_hits_carry_their_rank_in_each_list(tiny_retriever):
    """Each fused hit says where the dense and the BM25 lists ranked it: the same ranks those
    modes give when searched alone (None when a list didn't return it)."""
    q = "When does the library open?"
    hybrid = tiny_retriever.search(q, top_k=5, mode="hybrid")
    dense = {h.passage.id: h.rank for h in tiny_retriever.search(q, top_k=100, mode="dense")}
    bm25 = {h.passage.id: h.rank for h in tiny_retriever.search(q, top_k=100, mode="bm25")}
    for h in hybrid:
        assert h.dense_rank == dense.get(h.passage.id)
        assert h.keyword_rank == bm25.get(h.passage.id)
    assert any(h.dense_rank is not None for h in hybrid)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_with_relevance_equals_search_and_relevance(tiny_retriever, mode):
    q = "When does the library open?"
    hits, relevance = tiny_retriever.search_with_relevance(q, top_k=3, mode=mode)
    assert hits == tiny_retriever.search(q, top_k=3, mode=mode)
    assert relevance == pytest.approx(tiny_retriever.relevance(q))
