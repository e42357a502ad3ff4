"""The saved index: FAISS against brute force, save/load, atomic writes, staleness, incremental builds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from helpers.corpus import TINY_CORPUS
from helpers.fakes import FakeEncoder

import qa.stores.jobs as jobs_module
import qa.stores.local.build as build_module
import qa.stores.local.index as index_module
from qa.ingest.chunking import ChunkConfig, chunk_documents
from qa.ingest.documents import load_documents
from qa.stores.base import IndexNotFoundError, StaleIndexError
from qa.stores.local.build import build_index
from qa.stores.local.folder import read_manifest
from qa.stores.local.index import Index, make_bm25, make_faiss_index
from qa.stores.manifest import FORMAT_VERSION, docs_dir_of


def _random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ base.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# FAISS -------------------------------------------------------------------------------------------


def test_flat_index_equals_brute_force_top_k():
    base, queries = _random_unit_vectors(3000, 64, seed=0), _random_unit_vectors(50, 64, seed=1)
    index = make_faiss_index(base, approximate=False)
    assert type(index).__name__ == "IndexFlatIP"
    scores, ids = index.search(queries, 10)
    expected_scores, expected_ids = _brute_force_top_k(base, queries, 10)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_hnsw_index_has_high_recall_against_brute_force():
    base, queries = _random_unit_vectors(5000, 64, seed=2), _random_unit_vectors(100, 64, seed=3)
    index = make_faiss_index(base, approximate=True)
    assert "HNSW" in type(index).__name__
    scores, ids = index.search(queries, 10)
    _, expected_ids = _brute_force_top_k(base, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, expected_ids)])
    assert recall >= 0.95, f"HNSW recall@10 {recall:.3f}"
    # The scores it returns are true inner products of the ids it returns.
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, base[ids]), rtol=1e-4, atol=1e-4)


def test_exact_or_approximate_is_chosen_by_size(monkeypatch):
    monkeypatch.setattr(index_module, "APPROX_THRESHOLD", 100)
    assert type(make_faiss_index(_random_unit_vectors(100, 8, seed=4))).__name__ == "IndexFlatIP"
    assert "HNSW" in type(make_faiss_index(_random_unit_vectors(101, 8, seed=5))).__name__


# Save and load -----------------------------------------------------------------------------------


def test_build_then_load_round_trip(tiny_corpus, tmp_path, fake_encoder, small_chunks):
    out = tmp_path / "index"
    stats = build_index(tiny_corpus, out, encoder=fake_encoder, chunk_config=small_chunks)
    docs = load_documents(tiny_corpus)
    passages = chunk_documents(docs, small_chunks)
    assert stats.documents == len(docs) and stats.passages == len(passages) == stats.embedded
    assert stats.added == sorted(d.id for d in docs) and stats.changed == [] and stats.removed == []

    index = Index.load(out, model=fake_encoder.name)
    assert index.passages == passages
    assert index.documents == {d.id: d for d in docs}
    assert index.dense.ntotal == len(passages)
    np.testing.assert_allclose(index.dense.reconstruct_n(0, len(passages)), fake_encoder.embed([p.text for p in passages]))

    # Search results of the loaded FAISS and BM25 indexes equal those of freshly built ones.
    queries = ["how long do cats sleep", "rocket propellant thrust", "sourdough starter yeast", "storm pressure"]
    vectors = fake_encoder.embed(queries)
    fresh_dense = make_faiss_index(fake_encoder.embed([p.text for p in passages]), approximate=False)
    for got, want in zip(index.dense.search(vectors, 5), fresh_dense.search(vectors, 5)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    fresh_bm25 = make_bm25(passages)
    tokens = index_module.bm25_tokenize(queries)
    got_ids, got_scores = index.bm25.retrieve(tokens, k=5, show_progress=False)
    want_ids, want_scores = fresh_bm25.retrieve(tokens, k=5, show_progress=False)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)


def test_pdf_pages_survive_the_round_trip(make_corpus, tmp_path, fake_encoder):
    from helpers.corpus import minimal_pdf

    folder = make_corpus({"leaflet.pdf": minimal_pdf(["Page one about flu.", "Page two about colds."])})
    build_index(folder, tmp_path / "index", encoder=fake_encoder)
    doc = Index.load(tmp_path / "index").documents["leaflet"]
    assert doc.pages == load_documents(folder)[0].pages and len(doc.pages) == 2
    assert doc.page_at(doc.text.index("Page two")) == 2


def test_unicode_text_round_trips(make_corpus, tmp_path, fake_encoder):
    text = "“Quoted” costs £75bn 😀.\r\nSecond line here.\r\n\r\nNext block, no final newline"
    folder = make_corpus({"u.txt": text})
    build_index(folder, tmp_path / "index", encoder=fake_encoder)
    index = Index.load(tmp_path / "index")
    assert index.documents["u"].text == text
    for p in index.passages:
        assert index.documents["u"].text[p.start : p.end] == p.text


def test_manifest_contents(tiny_corpus, tiny_index, fake_encoder, small_chunks):
    manifest = json.loads((tiny_index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == fake_encoder.name
    assert manifest["dimension"] == fake_encoder.dimension
    assert manifest["normalized"] is True and manifest["metric"] == "inner_product"
    assert manifest["index_type"] == "flat"
    assert manifest["chunking"] == asdict(small_chunks)
    assert manifest["backend"] == "torch"  # an encoder without a backend attribute counts as torch
    assert manifest["passages"] == len(Index.load(tiny_index).passages)
    assert manifest["package_version"] and manifest["built_at"]
    # The documents' folder is recorded relative to the index, so a moved project still checks it.
    assert not Path(manifest["docs_dir"]).is_absolute()
    assert docs_dir_of(tiny_index, manifest) == tiny_corpus.resolve()
    files = {row["file"]: row for row in manifest["documents"]}
    assert sorted(files) == sorted(TINY_CORPUS)
    for rel, row in files.items():
        assert row["hash"] == hashlib.sha256((tiny_corpus / rel).read_bytes()).hexdigest()[:16]
        assert row["id"] == rel.rsplit(".", 1)[0]
    assert len(manifest["corpus_hash"]) == 16
    # The manifest names the version folder holding the data; the lock file stays for the next writer.
    assert sorted(p.name for p in tiny_index.iterdir()) == [".lock", "manifest.json", manifest["data"]]
    data = tiny_index / manifest["data"]
    assert sorted(p.name for p in data.iterdir()) == ["bm25", "dense.faiss", "documents.jsonl", "passages.jsonl"]


def test_corpus_hash_changes_with_the_documents(tiny_corpus, tmp_path, fake_encoder):
    build_index(tiny_corpus, tmp_path / "a", encoder=fake_encoder)
    (tiny_corpus / "weather.txt").write_text("Different weather text.", encoding="utf-8")
    build_index(tiny_corpus, tmp_path / "b", encoder=fake_encoder)
    hashes = [json.loads((tmp_path / n / "manifest.json").read_text())["corpus_hash"] for n in "ab"]
    assert hashes[0] != hashes[1]


def test_approximate_index_round_trip(tiny_corpus, tmp_path, fake_encoder):
    import faiss

    stats = build_index(tiny_corpus, tmp_path / "index", encoder=fake_encoder, approximate=True)
    assert stats.index_type == "hnsw"
    index = Index.load(tmp_path / "index")
    assert index.manifest["index_type"] == "hnsw"
    assert isinstance(index.dense, faiss.IndexHNSW)
    assert index.dense.hnsw.efSearch == index_module.HNSW_EF_SEARCH


@pytest.mark.parametrize("passages, expected", [(3, 128), (100_000, 128), (128_999, 128), (512_000, 512),
                                                (1_000_000, 1000), (50_000_000, 1024)])
def test_hnsw_search_breadth_grows_with_the_corpus(passages, expected):
    # One per 1,000 passages, never below the 128 measured at 100k nor above 1,024 (qa/stores/local/index.py).
    from qa.stores.local.index import ef_search

    assert ef_search(passages) == expected


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index"):
        Index.load(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):  # IndexNotFoundError is a FileNotFoundError
        Index.load(tmp_path)


# Atomic writes -----------------------------------------------------------------------------------


def _fail(*args, **kwargs):
    raise RuntimeError("simulated failure")


@pytest.mark.parametrize("where", ["bm25.add", "bm25.build", "bm25.save", "faiss.write_index"])
def test_failed_build_leaves_previous_index_intact(tiny_corpus, tiny_index, fake_encoder, small_chunks, monkeypatch, where):
    import bm25s
    import faiss

    before = Index.load(tiny_index)
    (tiny_corpus / "weather.txt").write_text("Completely new weather text. About hail.", encoding="utf-8")
    if where == "bm25.add":
        monkeypatch.setattr(build_module.Bm25Builder, "add", _fail)  # while the passages are being written
    elif where == "bm25.build":
        monkeypatch.setattr(build_module.Bm25Builder, "build", _fail)  # after the passages were written
    elif where == "bm25.save":
        monkeypatch.setattr(bm25s.BM25, "save", _fail)  # inside the temporary folder, after FAISS was written
    else:
        monkeypatch.setattr(faiss, "write_index", _fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        build_index(tiny_corpus, tiny_index, encoder=fake_encoder, chunk_config=small_chunks)
    monkeypatch.undo()

    after = Index.load(tiny_index, check_documents=False)
    assert after.passages == before.passages
    assert after.manifest == before.manifest
    assert _leftovers(tiny_index.parent) == [], "no temporary or backup folder is left behind"
    with pytest.raises(StaleIndexError):  # the old index does not pretend to know the new text
        Index.load(tiny_index)


def test_successful_rebuild_leaves_no_temporary_folders(tiny_corpus, tiny_index, fake_encoder, small_chunks):
    (tiny_corpus / "weather.txt").write_text("New weather text.", encoding="utf-8")
    build_index(tiny_corpus, tiny_index, encoder=fake_encoder, chunk_config=small_chunks)
    assert _leftovers(tiny_index.parent) == []
    Index.load(tiny_index)


# Staleness ---------------------------------------------------------------------------------------


def test_changed_document_makes_the_index_stale(tiny_corpus, tiny_index):
    Index.load(tiny_index)
    (tiny_corpus / "animals" / "cats.txt").write_text("Cats changed.", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="qa index") as err:
        Index.load(tiny_index)
    assert "animals/cats.txt" in str(err.value) and "changed" in str(err.value)


def test_added_and_removed_documents_make_the_index_stale(tiny_corpus, tiny_index):
    (tiny_corpus / "new.md").write_text("# New\n\nA new document.", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="new.md"):
        Index.load(tiny_index)
    (tiny_corpus / "new.md").unlink()
    (tiny_corpus / "weather.txt").unlink()
    with pytest.raises(StaleIndexError, match="removed"):
        Index.load(tiny_index)


def test_unsupported_and_hidden_files_do_not_make_the_index_stale(tiny_corpus, tiny_index):
    (tiny_corpus / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (tiny_corpus / ".notes.txt").write_text("hidden", encoding="utf-8")
    Index.load(tiny_index)


def test_index_built_next_to_a_skipped_file_is_not_stale(make_corpus, tmp_path, fake_encoder):
    # load_documents skips an empty (or binary, or undecodable) file with a warning; the index built
    # from the rest must then load. Otherwise `qa index` can never produce an index that loads.
    folder = make_corpus({**TINY_CORPUS, "empty.txt": ""})
    build_index(folder, tmp_path / "index", encoder=fake_encoder)
    Index.load(tmp_path / "index")


def test_index_of_another_model_is_stale(tiny_index):
    with pytest.raises(StaleIndexError, match="qa index") as err:
        Index.load(tiny_index, model="all-MiniLM-L6-v2")
    assert "fake-bow" in str(err.value) and "--model all-MiniLM-L6-v2" in str(err.value)


def test_index_of_another_encoder_backend_is_stale(tiny_index):
    with pytest.raises(StaleIndexError, match="qa index") as err:
        Index.load(tiny_index, backend="onnx-int8")
    assert "torch encoder backend" in str(err.value) and "--backend onnx-int8" in str(err.value)
    assert Index.load(tiny_index, backend="torch").manifest["backend"] == "torch"


def test_index_without_its_documents_still_loads(tiny_corpus, tiny_index):
    # An index shipped without the documents folder has nothing to compare against.
    import shutil

    shutil.rmtree(tiny_corpus)
    assert len(Index.load(tiny_index).documents) == len(TINY_CORPUS)


def test_check_documents_false_skips_the_comparison(tiny_corpus, tiny_index):
    (tiny_corpus / "weather.txt").write_text("Changed.", encoding="utf-8")
    Index.load(tiny_index, check_documents=False)


def test_inconsistent_index_is_refused(tiny_index):
    passages = tiny_index / read_manifest(tiny_index)["data"] / "passages.jsonl"
    lines = passages.read_text(encoding="utf-8").split("\n")
    passages.write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="inconsistent"):
        Index.load(tiny_index)


def test_other_format_version_is_stale(tiny_index):
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    manifest["format_version"] = 999
    (tiny_index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleIndexError, match="qa index"):
        Index.load(tiny_index)


# Incremental rebuilds ----------------------------------------------------------------------------


def _passages_of(index: Index, doc_id: str):
    return [p for p in index.passages if p.doc_id == doc_id]


def test_incremental_rebuild_embeds_only_changed_and_new_documents(tiny_corpus, tmp_path, small_chunks):
    encoder = FakeEncoder()
    out = tmp_path / "index"
    first = build_index(tiny_corpus, out, encoder=encoder, chunk_config=small_chunks)
    assert encoder.passage_count == first.passages
    before = Index.load(out)
    before_vectors = before.dense.reconstruct_n(0, before.dense.ntotal)

    # Nothing changed: nothing is embedded.
    encoder.reset()
    stats = build_index(tiny_corpus, out, encoder=encoder, chunk_config=small_chunks)
    assert encoder.passage_count == 0 == stats.embedded
    assert Index.load(out).passages == before.passages

    # One document changed: only its passages go through the encoder.
    encoder.reset()
    (tiny_corpus / "weather.txt").write_text(
        "Weather notes\n\nHail is ice that falls from thunderstorms. Fog is a cloud at ground level.\n", encoding="utf-8"
    )
    stats = build_index(tiny_corpus, out, encoder=encoder, chunk_config=small_chunks)
    after = Index.load(out)
    new_weather = _passages_of(after, "weather")
    assert stats.changed == ["weather"] and stats.added == [] and stats.removed == []
    assert encoder.passages_encoded == [p.text for p in new_weather]
    assert stats.embedded == len(new_weather)
    assert any("Hail" in p.text for p in new_weather)
    # Unchanged documents keep their passages and vectors.
    after_vectors = after.dense.reconstruct_n(0, after.dense.ntotal)
    old_rows = {p.id: i for i, p in enumerate(before.passages)}
    for i, p in enumerate(after.passages):
        if p.doc_id != "weather":
            np.testing.assert_array_equal(after_vectors[i], before_vectors[old_rows[p.id]])
        else:
            np.testing.assert_allclose(after_vectors[i], encoder.embed([p.text])[0])

    # One document added.
    encoder.reset()
    (tiny_corpus / "space" / "moon.txt").write_text("The Moon\n\nThe Moon orbits the Earth every 27 days.", encoding="utf-8")
    stats = build_index(tiny_corpus, out, encoder=encoder, chunk_config=small_chunks)
    after = Index.load(out)
    assert stats.added == ["space/moon"] and stats.changed == []
    assert encoder.passages_encoded == [p.text for p in _passages_of(after, "space/moon")]

    # One document removed: its passages are dropped, nothing is embedded.
    encoder.reset()
    (tiny_corpus / "kitchen" / "bread.txt").unlink()
    stats = build_index(tiny_corpus, out, encoder=encoder, chunk_config=small_chunks)
    after = Index.load(out)
    assert stats.removed == ["kitchen/bread"] and encoder.passage_count == 0
    assert "kitchen/bread" not in after.documents and _passages_of(after, "kitchen/bread") == []
    assert after.dense.ntotal == len(after.passages)
    assert after.bm25.scores["num_docs"] == len(after.passages)
    assert not any("sourdough" in p.text.lower() for p in after.passages)


def test_changed_settings_or_model_rebuild_everything(tiny_corpus, tmp_path, small_chunks):
    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=FakeEncoder(), chunk_config=small_chunks)

    other_chunks = ChunkConfig(chunk_size=60, chunk_overlap=0)
    encoder = FakeEncoder()
    stats = build_index(tiny_corpus, out, encoder=encoder, chunk_config=other_chunks)
    assert encoder.passage_count == stats.passages == len(Index.load(out).passages)

    other_model = FakeEncoder(name="other-fake")
    stats = build_index(tiny_corpus, out, encoder=other_model, chunk_config=other_chunks)
    assert other_model.passage_count == stats.passages
    assert Index.load(out).manifest["model"] == "other-fake"

    other_backend = FakeEncoder(name="other-fake")
    other_backend.backend = "onnx-int8"  # same model, run another way: slightly different vectors
    stats = build_index(tiny_corpus, out, encoder=other_backend, chunk_config=other_chunks)
    assert other_backend.passage_count == stats.passages
    assert Index.load(out).manifest["backend"] == "onnx-int8"


def test_build_resolves_each_document_path_a_bounded_number_of_times(tiny_corpus, tmp_path, small_chunks, monkeypatch):
    # A per-file scan over all documents once made a 5,183-document build take minutes before embedding.
    calls = []
    real = jobs_module._doc_file
    monkeypatch.setattr(jobs_module, "_doc_file", lambda doc, root: calls.append(doc.id) or real(doc, root))
    build_index(tiny_corpus, tmp_path / "index", encoder=FakeEncoder(), chunk_config=small_chunks)
    assert len(calls) <= 2 * len(TINY_CORPUS)


@pytest.mark.parametrize("level, shown", [("WARNING", False), ("DEBUG", True)])
def test_bm25s_logs_follow_the_logging_configuration(level, shown):
    # bm25s sets its own logger to DEBUG on import; a fresh interpreter shows whether we undo that.
    import subprocess
    import sys

    code = (f"import logging; logging.basicConfig(level=logging.{level}); from qa.stores.local.index import make_bm25; "
            "from qa.types import Passage; make_bm25([Passage('d:0-5', 'd', 0, 5, 'hello')])")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert ("DEBUG:bm25s" in err) is shown, err


def test_non_incremental_build_embeds_everything(tiny_corpus, tiny_index, small_chunks):
    encoder = FakeEncoder()
    stats = build_index(tiny_corpus, tiny_index, encoder=encoder, chunk_config=small_chunks, incremental=False)
    assert encoder.passage_count == stats.passages > 0


def test_bm25_built_in_batches_scores_as_bm25s_does():
    """The streaming builder (token ids, batch by batch, one stem cache) against bm25s's own path
    (tokenize every text at once, index the token strings): the same score for every passage."""
    import bm25s
    import Stemmer

    from qa.stores.local.index import Bm25Builder, bm25_tokenize

    texts = [f"The {w} of {v} rose in {1990 + i}; runners running, ran {w}s." for i, (w, v) in
             enumerate(zip(["tide", "price", "river", "count"] * 5, ["London", "wheat", "Thames", "votes"] * 5))]
    texts += ["", "the of and", "Café naïve Ünïcödé x y zz", "HELLO_world foo-bar 3.14"]
    reference_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                                      return_ids=False, show_progress=False)
    assert bm25_tokenize(texts) == reference_tokens
    reference = bm25s.BM25()
    reference.index(reference_tokens, show_progress=False)
    builder = Bm25Builder()
    for start in range(0, len(texts), 3):
        builder.add(texts[start:start + 3])
    built = builder.build()
    for query in ["tide rising in London", "running runners", "café naïve", "zz 3.14 hello_world"]:
        tokens = bm25_tokenize([query])[0]
        expected = reference.get_scores([t for t in tokens if t in reference.vocab_dict])
        got = built.get_scores([t for t in tokens if t in built.vocab_dict])
        assert expected.max() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_passage_count_the_manifest_disagrees_with_is_said_so(tiny_index):
    """Not "29 vectors, 29 passages": the numbers that disagree are named."""
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    manifest["passages"] += 1
    (tiny_index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleIndexError) as refused:
        Index.load(tiny_index, check_documents=False)
    said = str(refused.value)
    assert f"holds {manifest['passages'] - 1:,} passages where manifest.json says {manifest['passages']:,}" in said
