"""The scale benchmark's data: real sentences read once, synthetic documents that recombine them
within one article, composed vectors at the intended distance, and the recall and fusion it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.scale import (ComposedEncoder, Pool, fuse, noise_scale, read_articles, recall_at_k,
                              synthetic_documents, usable_sentence, write_corpus)
from qa.ingest.chunking import ChunkConfig, chunk_document, sentence_spans
from qa.types import Document

WORDS = ["river", "bridge", "castle", "engine", "violin", "harbour", "glacier", "orchard", "comet", "library",
         "falcon", "quarry", "meadow", "lantern", "canyon", "tunnel"]


def _pool(articles: int = 4, per_article: int = 30, dim: int = 16, seed: int = 0) -> Pool:
    """Sentences that read as one sentence each, grouped by article, with random unit vectors."""
    rng = np.random.default_rng(seed)
    sentences, article_of = [], []
    for a in range(articles):
        for i in range(per_article):
            sentences.append(f"The {WORDS[a]} of story {i} stood near the {WORDS[(a + i) % len(WORDS)]} all year.")
            article_of.append(a)
    vectors = rng.standard_normal((len(sentences), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = [f"Where did the {w} stand?" for w in WORDS[:3]]
    qv = rng.standard_normal((3, dim)).astype(np.float32)
    return Pool(sentences, np.array(article_of), vectors, queries, qv / np.linalg.norm(qv, axis=1, keepdims=True))


def test_noise_scale_puts_vectors_at_the_asked_cosine():
    rng = np.random.default_rng(1)
    dim = 384
    base = rng.standard_normal((2000, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    for cosine in (0.95, 0.8):
        noisy = base + rng.normal(0, noise_scale(cosine, dim), base.shape)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        assert abs(np.einsum("nd,nd->n", base, noisy).mean() - cosine) < 0.01
    with pytest.raises(ValueError):
        noise_scale(0.0, dim)


def test_composed_vector_is_the_noisy_mean_of_its_sentences():
    pool = _pool()
    text = pool.sentences[3] + " " + pool.sentences[7]
    mean = pool.vectors[3] + pool.vectors[7]  # worked out here, not by the encoder
    mean /= np.linalg.norm(mean)
    exact = ComposedEncoder(pool, 0.0).encode_passages([text])[0]
    np.testing.assert_allclose(exact, mean, atol=1e-6)

    sigma = noise_scale(0.9, pool.vectors.shape[1])
    encoder = ComposedEncoder(pool, sigma)
    texts = [pool.sentences[i] + " " + pool.sentences[i + 1] for i in range(0, 100, 2)]
    vectors = encoder.encode_passages(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, ComposedEncoder(pool, sigma).encode_passages(texts))  # seeded by text
    means = np.stack([ComposedEncoder(pool, 0.0).encode_passages([t])[0] for t in texts])
    assert abs(np.einsum("nd,nd->n", vectors, means).mean() - 0.9) < 0.05
    assert encoder.unknown == 0 and encoder.sentences == 100
    np.testing.assert_array_equal(encoder.encode_queries([pool.queries[1]])[0], pool.query_vectors[1])


def test_documents_recombine_sentences_of_one_article():
    pool = _pool()
    article = {s: a for s, a in zip(pool.sentences, pool.article_of.tolist())}
    documents = synthetic_documents(pool, seed=3)
    for _ in range(20):
        text = next(documents)
        found = [text[s:e] for s, e in sentence_spans(text)]
        assert all(s in article for s in found), "every sentence is a pool sentence, found whole"
        assert len({article[s] for s in found}) == 1, "one article per document"
        assert len(found) == len(set(found)), "no sentence twice in a document"


def test_corpus_reaches_the_passage_count_and_every_passage_is_composable(tmp_path):
    pool = _pool()
    folder = tmp_path / "corpus"
    corpus = write_corpus(pool, 60, folder, chunk_config=ChunkConfig(300, 80))
    files = sorted(folder.glob("doc*.txt"))
    assert len(files) == corpus["documents"]
    passages = [p for f in files for p in chunk_document(Document(f.stem, f.stem, str(f), f.read_text()),
                                                          ChunkConfig(300, 80))]
    assert len(passages) == corpus["passages"] >= 60
    without_last = sum(len(chunk_document(Document(f.stem, f.stem, str(f), f.read_text()), ChunkConfig(300, 80)))
                       for f in files[:-1])
    assert without_last < 60, "stops at the first document that reaches the count"
    encoder = ComposedEncoder(pool, 0.01)
    encoder.encode_passages([p.text for p in passages])
    assert encoder.unknown == 0

    before = {f.name: f.stat().st_mtime_ns for f in files}
    assert write_corpus(pool, 60, folder, chunk_config=ChunkConfig(300, 80)) == corpus
    assert {f.name: f.stat().st_mtime_ns for f in sorted(folder.glob("doc*.txt"))} == before


def test_corpus_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        write_corpus(_pool(), 10, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_articles_keep_distinct_usable_sentences_and_their_questions(tmp_path):
    context = ("The castle was built in 1120 by the duke. The castle was built in 1120 by the duke. "
               "Short one. It burned down twice before the town rebuilt its walls in stone.")
    squad = {"data": [
        {"title": "Castle", "paragraphs": [{"context": context, "qas": [{"question": "Who built the castle?"}]}]},
        {"title": "Again", "paragraphs": [{"context": "The castle was built in 1120 by the duke.",
                                           "qas": [{"question": "When?"}]}]},
    ]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(squad))
    articles = read_articles([path])
    assert [a.title for a in articles] == ["Castle"]  # the second holds no sentence not seen before
    assert articles[0].sentences == ("The castle was built in 1120 by the duke.",
                                     "It burned down twice before the town rebuilt its walls in stone.")
    assert articles[0].questions == ("Who built the castle?",)
    assert not usable_sentence("Short one.")
    assert not usable_sentence("Two lines of text\nthat wrap here.")


def test_recall_and_fusion_match_hand_worked_values():
    # 7 of the exact top 10 found: 0.7.
    assert recall_at_k(list("abcdefgXYZ"), list("abcdefghij")) == 0.7
    # RRF, k=60: a is 1st and 2nd (1/61 + 1/62), b 2nd and 1st (the same sum; a wins the tie by its id's
    # first appearance, as both best ranks are 1), c only 3rd in one list (1/63).
    assert fuse([["a", "b", "c"], ["b", "a"]]) == ["a", "b", "c"]
    assert fuse([["x"], ["y", "x"]])[0] == "x"  # 1/61 + 1/62 beats 1/61


def test_the_product_builds_and_searches_with_composed_vectors(tmp_path):
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    pool = _pool(dim=32)
    write_corpus(pool, 40, tmp_path / "corpus")
    encoder = ComposedEncoder(pool, noise_scale(0.9, 32))
    build_index(tmp_path / "corpus", tmp_path / "index", encoder=encoder)
    retriever = Retriever.load(tmp_path / "index", encoder=encoder)
    passages = retriever.index.passages
    assert len(passages) >= 40 and encoder.unknown == 0
    for passage in passages[:10]:  # its own vector finds it first (exact search, distinct passages)
        vector = ComposedEncoder(pool, noise_scale(0.9, 32)).encode_passages([passage.text])[0]
        assert passages[retriever.index.dense_search(vector, 1)[0][0]].id == passage.id
