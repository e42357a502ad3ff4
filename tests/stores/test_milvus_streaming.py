"""Streaming ingestion into Milvus (Lite, embedded): a batch at a time, resumable after a crash."""

from __future__ import annotations

import pytest

from helpers.corpus import write_corpus
from helpers.fakes import FakeEncoder
from qa.ingest.chunking import ChunkConfig
from qa.stores import jobs as jobs_module
from qa.stores.milvus import build as milvus_build
from qa.stores.address import build_store, open_store

CHUNKS = ChunkConfig(chunk_size=60, chunk_overlap=0)


@pytest.fixture
def corpus(tmp_path):
    """Twelve documents of three passages or so each."""
    return write_corpus(tmp_path / "docs", {
        f"doc{i:02d}.txt": f"Document {i} opens here.\n\n" + " ".join(f"word{i}x{j} fills it" for j in range(12))
        for i in range(12)})


def test_documents_are_read_embedded_and_written_a_batch_at_a_time(corpus, tmp_path, monkeypatch):
    events: list[tuple[str, int]] = []
    real_load = jobs_module.load_document

    def load(path, *args, **kwargs):
        events.append(("read", 1))
        return real_load(path, *args, **kwargs)

    class Recording(FakeEncoder):
        def encode_passages(self, texts, show_progress=False):
            events.append(("embed", len(texts)))
            return super().encode_passages(texts)

    monkeypatch.setattr(jobs_module, "load_document", load)
    monkeypatch.setattr(milvus_build, "after_batch", lambda written: events.append(("written", written)))
    stats = build_store(corpus, f"milvus:{tmp_path / 'qa.db'}", encoder=Recording(), chunk_config=CHUNKS,
                        batch_size=8)
    embeds = [n for kind, n in events if kind == "embed"]
    most_per_document = max(n for n in embeds)  # a batch closes once it holds batch_size passages
    assert len(embeds) > 3 and sum(embeds) == stats.passages
    assert all(n < 8 + most_per_document for n in embeds)
    # Reading goes on after the first batch was written: the corpus is never all in memory.
    first_write = events.index(next(e for e in events if e[0] == "written"))
    assert ("read", 1) in events[first_write:]


def test_an_interrupted_build_resumes_from_what_it_wrote(corpus, tmp_path, monkeypatch):
    address = f"milvus:{tmp_path / 'qa.db'}"

    def crash(written: int) -> None:
        if written >= 16:
            raise KeyboardInterrupt  # as if the process were stopped here

    monkeypatch.setattr(milvus_build, "after_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        build_store(corpus, address, encoder=FakeEncoder(), chunk_config=CHUNKS, batch_size=8)
    monkeypatch.setattr(milvus_build, "after_batch", lambda written: None)
    with pytest.raises(Exception, match="No index"):
        open_store(address)  # nothing was published

    encoder = FakeEncoder()
    stats = build_store(corpus, address, encoder=encoder, chunk_config=CHUNKS, batch_size=8)
    assert 0 < encoder.passage_count <= stats.passages - 16  # the written batches were not embedded again
    store = open_store(address)
    assert len(list(store.passages)) == stats.passages == len(store.passages)
    assert sorted(store.documents) == [f"doc{i:02d}" for i in range(12)]
