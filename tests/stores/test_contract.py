"""One contract, three stores: local files, Milvus Lite embedded, and Milvus over gRPC.

Every test builds the tiny corpus with the fake bag-of-words encoder into a store given by its
address, and checks what any store must do against oracles that don't use the store: the chunker's
own passages, the documents' files, numpy's brute-force top k, and which passages hold a word.

The gRPC store runs when ``QA_MILVUS_URL`` names a server (``make test`` starts one) or under CI
(``CI=true``: a server is started here); elsewhere it is skipped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from helpers.fakes import FakeEncoder
from qa.ingest.chunking import chunk_document
from qa.ingest.documents import load_documents
from qa.retrieval.retriever import Retriever, reciprocal_rank_fusion
from qa.stores.address import build_store, open_store
from qa.stores.base import IndexNotFoundError, StaleIndexError

STORES = ["local", "milvus-lite", "milvus-grpc"]


@pytest.fixture(params=STORES)
def address(request, tmp_path) -> str:
    """A fresh store address of each kind."""
    if request.param == "local":
        return str(tmp_path / "index")
    if request.param == "milvus-lite":
        return f"milvus:{tmp_path / 'qa.db'}"
    url = request.getfixturevalue("milvus_url")
    return f"{url}#t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def built(address, tiny_corpus, small_chunks):
    encoder = FakeEncoder()
    stats = build_store(tiny_corpus, address, encoder=encoder, chunk_config=small_chunks)
    return address, encoder, stats


def expected_passages(corpus: Path, chunks) -> list:
    return sorted((p for d in load_documents(corpus) for p in chunk_document(d, chunks)),
                  key=lambda p: (p.doc_id, p.start))


def test_build_holds_every_passage_and_document_whole(built, tiny_corpus, small_chunks):
    address, encoder, stats = built
    store = open_store(address)
    expected = expected_passages(tiny_corpus, small_chunks)
    assert stats.passages == len(expected) == len(store.passages)
    assert sorted(store.passages, key=lambda p: (p.doc_id, p.start)) == expected
    files = {d.id: d for d in load_documents(tiny_corpus)}
    assert sorted(store.documents) == sorted(files)
    for doc_id, doc in files.items():
        assert store.documents[doc_id].text == doc.text and store.documents[doc_id].title == doc.title
    for p in store.passages:
        assert store.documents[p.doc_id].text[p.start : p.end] == p.text
    assert store.manifest["model"] == encoder.name and store.manifest["chunking"]["chunk_size"] == 100


def brute_force(store, encoder: FakeEncoder, query: str, k: int, doc_ids=None) -> list[tuple[str, float]]:
    passages = [p for p in store.passages if doc_ids is None or p.doc_id in doc_ids]
    scores = encoder.embed([p.text for p in passages]) @ encoder.embed([query])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(passages[i].id, float(scores[i])) for i in order]


@pytest.mark.parametrize("query", ["rocket engine thrust", "sourdough yeast", "storm pressure"])
def test_dense_search_equals_brute_force(built, query):
    address, encoder, _ = built
    store = open_store(address)
    got = store.dense_search(encoder.embed([query])[0], k=4)
    want = brute_force(store, encoder, query, 4)
    assert [round(s, 5) for _, s in got] == pytest.approx([round(s, 5) for _, s in want], abs=1e-4)
    assert {store.passages[r].id for r, s in got if s > want[-1][1] + 1e-5} <= {i for i, _ in want}
    assert store.passages[got[0][0]].id == want[0][0]


def test_doc_ids_filter_keeps_results_inside_those_documents(built):
    address, encoder, _ = built
    store = open_store(address)
    only = ["weather", "kitchen/bread"]
    dense = store.dense_search(encoder.embed(["rocket"])[0], k=10, doc_ids=only)
    keyword = store.keyword_search("bread storm rocket", k=10, doc_ids=only)
    assert dense and keyword
    assert {store.passages[r].doc_id for r, _ in dense + keyword} <= set(only)
    want = brute_force(store, encoder, "rocket", 10, doc_ids=set(only))
    assert len(dense) == len(want)


def test_keyword_search_finds_the_passages_holding_the_word(built):
    address, _, _ = built
    store = open_store(address)
    hits = store.keyword_search("barometer", k=5)
    holding = {p.id for p in store.passages if "barometer" in p.text.lower()}
    assert holding and {store.passages[r].id for r, _ in hits} == holding  # ranks matter, not scores
    assert store.keyword_search("zyzzyva", k=5) == []


def test_retriever_and_hybrid_search_rank_the_right_document_first(built):
    address, encoder, _ = built
    retriever = Retriever.load(address, encoder=encoder)
    for question, doc in [("How long do cats sleep?", "animals/cats"), ("What carried astronauts to the Moon?",
                                                                        "space/rockets")]:
        assert retriever.search(question, top_k=3, mode="hybrid")[0].passage.doc_id == doc
        assert retriever.search(question, top_k=3, mode="bm25")[0].passage.doc_id == doc
    hits = retriever.search("yeast", top_k=5, doc_ids=["weather"])
    assert {h.passage.doc_id for h in hits} == {"weather"}


def test_engine_hybrid_equals_rank_fusion_of_the_two_lists(built):
    address, encoder, _ = built
    store = open_store(address)
    if not hasattr(store, "hybrid_search"):
        pytest.skip("the local store fuses in the retriever")
    query = "cats sleep and rockets burn propellant"
    vector = encoder.embed([query])[0]
    dense = store.dense_search(vector, k=100)
    keyword = store.keyword_search(query, k=100)
    want = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in keyword]])[:5]
    got = store.hybrid_search(vector, query, k=5)
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)
    assert {r for r, _ in got} == {r for r, _ in want} or [s for _, s in want].count(want[-1][1]) > 1


def test_changed_document_is_stale_then_updated_in_place(built, tiny_corpus, small_chunks):
    address, _, _ = built
    (tiny_corpus / "weather.txt").write_text("Weather notes\n\nA hygrometer measures humidity in the air.\n",
                                             encoding="utf-8")
    (tiny_corpus / "kitchen" / "bread.txt").unlink()
    with pytest.raises(StaleIndexError, match="out of date"):
        open_store(address)
    encoder = FakeEncoder()
    stats = build_store(tiny_corpus, address, encoder=encoder, chunk_config=small_chunks)
    assert stats.changed == ["weather"] and stats.removed == ["kitchen/bread"] and not stats.added
    assert all("hygrometer" in t or "Weather" in t for t in encoder.passages_encoded)  # only weather embedded
    store = open_store(address)
    assert sorted(store.passages, key=lambda p: (p.doc_id, p.start)) == expected_passages(tiny_corpus, small_chunks)
    assert "kitchen/bread" not in store.documents
    assert [store.passages[r].doc_id for r, _ in store.keyword_search("hygrometer", k=3)] == ["weather"]
    assert store.keyword_search("barometer", k=3) == []
    again = build_store(tiny_corpus, address, encoder=encoder, chunk_config=small_chunks)
    assert not again.written and again.embedded == 0


def test_other_model_is_stale_and_missing_store_says_how_to_build(built, tmp_path, address):
    address, _, _ = built
    with pytest.raises(StaleIndexError, match="model"):
        open_store(address, model="another-model")
    missing = address.replace("#t_", "#u_") if "#" in address else (
        f"milvus:{tmp_path / 'none.db'}" if address.startswith("milvus:") else str(tmp_path / "none"))
    with pytest.raises(IndexNotFoundError, match="qa index"):
        open_store(missing)


def test_full_rebuild_with_other_chunks_replaces_the_store(built, tiny_corpus):
    from qa.ingest.chunking import ChunkConfig

    address, _, _ = built
    bigger = ChunkConfig(chunk_size=400, chunk_overlap=0)
    build_store(tiny_corpus, address, encoder=FakeEncoder(), chunk_config=bigger)
    store = open_store(address)
    assert store.manifest["chunking"]["chunk_size"] == 400
    assert sorted(store.passages, key=lambda p: (p.doc_id, p.start)) == expected_passages(tiny_corpus, bigger)
