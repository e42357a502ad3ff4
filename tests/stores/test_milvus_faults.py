"""Milvus over gRPC when things go wrong: the server killed mid-build, down at query time, a wrong token.

Each test starts its own ``milvus-lite server`` (127.0.0.1, a free port, a temporary data folder) and
stops it whatever happens. They run when ``QA_MILVUS_URL`` is set (``make test``) or under CI.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.fakes import FakeEncoder
from milvus_server import MilvusServer, grpc_enabled
from qa.ingest.chunking import ChunkConfig, chunk_document
from qa.ingest.documents import load_documents
from qa.stores.milvus import build as milvus_build
from qa.stores.address import build_store, open_store
from qa.stores.base import StoreUnavailableError

pytestmark = pytest.mark.skipif(not grpc_enabled(),
                                reason="Milvus server tests: set QA_MILVUS_URL (make test does) or CI=true")


@pytest.fixture
def milvus(tmp_path):
    milvus = MilvusServer(tmp_path / "milvus-data").start()
    try:
        yield milvus
    finally:
        milvus.stop()


def whole(store, corpus, chunks) -> bool:
    """Whether the store holds exactly the passages the chunker makes of the corpus, each inside its document."""
    expected = sorted((p for d in load_documents(corpus) for p in chunk_document(d, chunks)),
                      key=lambda p: (p.doc_id, p.start))
    held = sorted(store.passages, key=lambda p: (p.doc_id, p.start))
    return held == expected and all(store.documents[p.doc_id].text[p.start : p.end] == p.text for p in held)


def test_server_killed_mid_build_leaves_the_previous_version_whole_and_a_rebuild_finishes(
        milvus, tiny_corpus, small_chunks, monkeypatch):
    address = f"{milvus.url}#kill"
    build_store(tiny_corpus, address, encoder=FakeEncoder(), chunk_config=small_chunks)
    bigger = ChunkConfig(chunk_size=60, chunk_overlap=0)  # another chunking: a full build of a new version
    batches = []

    def crash(written: int) -> None:
        batches.append(written)
        if len(batches) == 2:
            milvus.kill()

    monkeypatch.setattr(milvus_build, "after_batch", crash)
    with pytest.raises(StoreUnavailableError) as failed:
        build_store(tiny_corpus, address, encoder=FakeEncoder(), chunk_config=bigger, batch_size=3)
    assert milvus.url in str(failed.value) and "\n" not in str(failed.value)
    monkeypatch.setattr(milvus_build, "after_batch", lambda written: None)

    milvus.start()  # the same data folder and port
    store = open_store(address)
    assert store.manifest["chunking"]["chunk_size"] == small_chunks.chunk_size
    assert whole(store, tiny_corpus, small_chunks)

    encoder = FakeEncoder()
    build_store(tiny_corpus, address, encoder=encoder, chunk_config=bigger, batch_size=3)
    store = open_store(address)
    assert store.manifest["chunking"]["chunk_size"] == 60
    assert whole(store, tiny_corpus, bigger)
    total = len(store.passages)
    print(f"resumed build embedded {encoder.passage_count} of {total} passages")
    assert encoder.passage_count < total  # resumed: what the killed build wrote was kept


def test_server_down_at_query_time_is_one_line_naming_the_url(milvus, tiny_corpus, small_chunks, tmp_path):
    from qa.retrieval.retriever import Retriever

    address = f"{milvus.url}#down"
    encoder = FakeEncoder()
    build_store(tiny_corpus, address, encoder=encoder, chunk_config=small_chunks)
    retriever = Retriever.load(address, encoder=encoder)
    assert retriever.search("cats", top_k=1)
    milvus.stop()
    with pytest.raises(StoreUnavailableError) as down:
        retriever.search("rockets", top_k=3)
    message = str(down.value)
    assert milvus.url in message and "\n" not in message and "start it" in message

    # The command line says the same in one line, without a traceback.
    run = subprocess.run([sys.executable, "-m", "qa.cli", "search", "rockets", "--index", address],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert run.stderr.startswith("qa: error: ") and milvus.url in run.stderr


def test_wrong_token_is_refused_with_a_line_naming_the_variable(tmp_path, tiny_corpus, small_chunks, monkeypatch):
    server = MilvusServer(tmp_path / "milvus-data", token="root:Right-Token").start()
    try:
        address = f"{server.url}#secured"
        monkeypatch.setenv("QA_MILVUS_TOKEN", "root:Right-Token")
        encoder = FakeEncoder()
        build_store(tiny_corpus, address, encoder=encoder, chunk_config=small_chunks)
        assert open_store(address).keyword_search("barometer", k=1)

        monkeypatch.setenv("QA_MILVUS_TOKEN", "root:wrong")
        with pytest.raises(StoreUnavailableError) as refused:
            open_store(address)
        message = str(refused.value)
        assert "QA_MILVUS_TOKEN" in message and server.url in message and "\n" not in message
        assert "wrong" not in message  # the token itself is never printed
        monkeypatch.delenv("QA_MILVUS_TOKEN")
        with pytest.raises(StoreUnavailableError, match="QA_MILVUS_TOKEN"):
            open_store(address)
    finally:
        server.stop()
