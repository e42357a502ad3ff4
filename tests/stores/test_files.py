"""What the index records and reads: line separators, symlinked documents, no-op builds, cheap
staleness checks (size and mtime first, as git's index does) and resumable, batched embedding."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.corpus import TINY_CORPUS
from helpers.fakes import FakeEncoder

import qa.stores.jobs as jobs_module
import qa.stores.manifest as manifest_module
from qa.ingest.chunking import ChunkConfig
from qa.stores.base import StaleIndexError
from qa.stores.local.build import build_index
from qa.stores.local.index import Index

# Every character str.splitlines splits on besides "\n" (Python's docs, "str.splitlines").
SEPARATORS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file of the index (the lock file, which records its holder, aside)."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _age(folder: Path, seconds: float = 3600) -> None:
    """Set every file's mtime an hour back, as for a corpus that was not just written."""
    when = os.stat(folder).st_mtime - seconds
    for p in folder.rglob("*"):
        os.utime(p, (when, when))


# 4. Line separators -------------------------------------------------------------------------------


def test_every_line_separator_round_trips_and_is_not_reembedded(make_corpus, tmp_path, small_chunks):
    text = "Separators\n\n" + " and ".join(f"word{i}{c}next{i}" for i, c in enumerate(SEPARATORS)) + ".\n"
    folder = make_corpus({"seps.txt": text, "plain.txt": "A plain document about cats."})
    out = tmp_path / "index"
    build_index(folder, out, encoder=FakeEncoder(), chunk_config=small_chunks)
    index = Index.load(out)
    assert index.documents["seps"].text == text
    for p in index.passages:
        assert index.documents[p.doc_id].text[p.start : p.end] == p.text
    assert "".join(p.text for p in index.passages if p.doc_id == "seps").count("\u2028") >= 1
    encoder = FakeEncoder()
    stats = build_index(folder, out, encoder=encoder, chunk_config=small_chunks)
    assert encoder.passage_count == 0 == stats.embedded


# 7. Symlinked documents ---------------------------------------------------------------------------


def test_a_document_symlinked_from_outside_the_folder_is_indexed(make_corpus, tmp_path, fake_encoder):
    outside = tmp_path / "elsewhere" / "guide.txt"
    outside.parent.mkdir()
    outside.write_text("Guide\n\nThe guide explains how to renew a passport.", encoding="utf-8")
    folder = make_corpus(TINY_CORPUS)
    (folder / "guide.txt").symlink_to(outside)
    build_index(folder, tmp_path / "index", encoder=fake_encoder)
    index = Index.load(tmp_path / "index")
    assert "passport" in index.documents["guide"].text
    rows = {row["file"]: row for row in index.manifest["documents"]}
    assert rows["guide.txt"]["hash"] == hashlib.sha256(outside.read_bytes()).hexdigest()[:16]
    outside.write_text("Guide\n\nNow about driving licences.", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="guide.txt"):
        Index.load(tmp_path / "index")


# 6. No-op builds and cheap staleness checks ---------------------------------------------------------


def test_a_build_with_nothing_changed_changes_no_byte(tiny_corpus, tiny_index, small_chunks):
    before = _snapshot(tiny_index)
    encoder = FakeEncoder()
    stats = build_index(tiny_corpus, tiny_index, encoder=encoder, chunk_config=small_chunks)
    assert stats.embedded == 0 == encoder.passage_count
    assert _snapshot(tiny_index) == before


def _count_hashing(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real = manifest_module.hash_file
    counting = lambda path: hashed.append(Path(path).name) or real(path)  # noqa: E731
    # Hashed where staleness is checked (loading) and where a build records the files.
    monkeypatch.setattr(manifest_module, "hash_file", counting)
    monkeypatch.setattr(jobs_module, "hash_file", counting)
    return hashed


def test_loading_hashes_only_files_whose_size_or_mtime_changed(tiny_corpus, tmp_path, fake_encoder, monkeypatch):
    _age(tiny_corpus)
    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=fake_encoder)
    hashed = _count_hashing(monkeypatch)
    Index.load(out)
    assert hashed == []

    # Touched, same bytes: hashed once, not stale.
    weather = tiny_corpus / "weather.txt"
    os.utime(weather)
    Index.load(out)
    assert hashed == ["weather.txt"]

    # Same size, other bytes, new mtime: hashed and found changed.
    hashed.clear()
    weather.write_text(weather.read_text(encoding="utf-8").replace("storm", "STORM"), encoding="utf-8")
    with pytest.raises(StaleIndexError, match="weather.txt"):
        Index.load(out)
    assert hashed == ["weather.txt"]


def test_a_file_written_just_before_the_build_is_always_hashed(tiny_corpus, tmp_path, fake_encoder, monkeypatch):
    # Its mtime may not tell a later write in the same clock tick apart (git's "racily clean" entries).
    _age(tiny_corpus)
    (tiny_corpus / "weather.txt").write_text("Fresh weather notes.", encoding="utf-8")
    build_index(tiny_corpus, tmp_path / "index", encoder=fake_encoder)
    hashed = _count_hashing(monkeypatch)
    Index.load(tmp_path / "index")
    assert hashed == ["weather.txt"]


def test_the_recorded_hash_and_file_are_those_the_loader_gives(tiny_corpus, tmp_path, fake_encoder, monkeypatch):
    real = jobs_module.load_document
    loaded = {}

    def loaded_with_hashes(path, doc_id=None, root=None):
        doc = dataclasses.replace(real(path, doc_id, root), file=Path(path).relative_to(root).as_posix(),
                                  source_hash=hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16])
        loaded[doc.id] = doc
        return doc

    monkeypatch.setattr(jobs_module, "load_document", loaded_with_hashes)
    hashed = _count_hashing(monkeypatch)
    build_index(tiny_corpus, tmp_path / "index", encoder=fake_encoder)
    assert hashed == []  # the loader's hashes of the bytes it read are used
    rows = Index.load(tmp_path / "index").manifest["documents"]
    assert sorted(row["id"] for row in rows) == sorted(loaded)
    for row in rows:
        assert row["hash"] == loaded[row["id"]].source_hash and row["file"] == loaded[row["id"]].file


# 8. Resumable, batched embedding -----------------------------------------------------------------


class CrashingEncoder(FakeEncoder):
    """Raises on its ``fail_on``-th call of encode_passages."""

    def __init__(self, fail_on: int):
        super().__init__()
        self.calls, self.fail_on = 0, fail_on

    def encode_passages(self, texts, show_progress=False):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed while embedding")
        return super().encode_passages(texts, show_progress)


def test_an_interrupted_build_resumes_where_it_stopped(tiny_corpus, tmp_path, small_chunks):
    clean = tmp_path / "clean"
    build_index(tiny_corpus, clean, encoder=FakeEncoder(), chunk_config=small_chunks)
    expected = Index.load(clean)
    total = len(expected.passages)
    assert total > 6

    out = tmp_path / "index"
    first = CrashingEncoder(fail_on=3)
    with pytest.raises(KeyboardInterrupt):
        build_index(tiny_corpus, out, encoder=first, chunk_config=small_chunks, batch_size=2)
    assert first.passage_count == 4  # two batches of two got through

    second = FakeEncoder()
    stats = build_index(tiny_corpus, out, encoder=second, chunk_config=small_chunks, batch_size=2)
    assert second.passage_count == stats.embedded == total - 4
    got = Index.load(out)
    assert got.passages == expected.passages
    np.testing.assert_array_equal(got.dense.reconstruct_n(0, total), expected.dense.reconstruct_n(0, total))
    assert not any(p.name.startswith(".partial") for p in out.iterdir())  # the checkpoint is gone


def test_a_killed_builds_vectors_are_cleared_by_a_build_with_nothing_left_to_embed(tiny_corpus, tmp_path,
                                                                                     small_chunks):
    """The probe: .partial/ stayed after a killed build when the next one found nothing to embed."""
    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=FakeEncoder(), chunk_config=small_chunks)
    (tiny_corpus / "extra.txt").write_text("Extra notes.\n\nOne more file to embed. " * 20, encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        build_index(tiny_corpus, out, encoder=CrashingEncoder(fail_on=2), chunk_config=small_chunks, batch_size=2)
    assert (out / ".partial").is_dir()
    (tiny_corpus / "extra.txt").unlink()  # what the killed build was embedding is gone: nothing left to do
    stats = build_index(tiny_corpus, out, encoder=FakeEncoder(), chunk_config=small_chunks)
    assert not stats.written and not (out / ".partial").exists()


def test_clearing_the_vectors_leaves_what_a_build_did_not_make(tiny_corpus, tmp_path, small_chunks):
    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=FakeEncoder(), chunk_config=small_chunks)
    partial = out / ".partial"
    partial.mkdir()
    (partial / "meta.json").write_text("{}", encoding="utf-8")
    (partial / "batch-000001.npy").write_bytes(b"")
    (partial / "notes.txt").write_text("someone's own file", encoding="utf-8")
    build_index(tiny_corpus, out, encoder=FakeEncoder(), chunk_config=small_chunks)
    assert sorted(p.name for p in partial.iterdir()) == ["notes.txt"]


def test_embedding_goes_in_batches(tiny_corpus, tmp_path, small_chunks):
    sizes: list[int] = []

    class Counting(FakeEncoder):
        def encode_passages(self, texts, show_progress=False):
            sizes.append(len(texts))
            return super().encode_passages(texts, show_progress)

    stats = build_index(tiny_corpus, tmp_path / "index", encoder=Counting(), chunk_config=small_chunks, batch_size=3)
    assert sum(sizes) == stats.passages and max(sizes) == 3 and len(sizes) == -(-stats.passages // 3)


def test_a_checkpoint_of_another_model_is_not_used(tiny_corpus, tmp_path, small_chunks):
    out = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(tiny_corpus, out, encoder=CrashingEncoder(fail_on=2), chunk_config=small_chunks, batch_size=2)
    other = FakeEncoder(name="other-model", dimension=256)
    stats = build_index(tiny_corpus, out, encoder=other, chunk_config=small_chunks, batch_size=2)
    assert other.passage_count == stats.passages == stats.embedded
    got = Index.load(out)
    np.testing.assert_allclose(got.dense.reconstruct_n(0, got.dense.ntotal),
                               other.embed([p.text for p in got.passages]), rtol=1e-6)


def test_a_file_that_cannot_be_read_is_skipped_and_the_build_goes_on(make_corpus, tmp_path, fake_encoder, monkeypatch):
    """Loading skips a file it can't read (a warning names it); hashing it for the manifest must not
    abort the build either, and the index then loads as up to date."""
    import builtins


    docs = make_corpus({"good.txt": "The bridge opened in 1932 after eight years of work.",
                        "private.md": "Secret minutes of the board."})
    real_open, real_read_bytes = builtins.open, Path.read_bytes

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith("private.md"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_read_bytes(self):
        if self.name == "private.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(Path, "read_bytes", guarded_read_bytes)
    out = tmp_path / "index"
    stats = build_index(docs, out, encoder=fake_encoder)
    assert stats.documents == 1
    index = Index.load(out)  # checks the documents too: the unreadable file must not read as changed
    assert [d for d in index.documents] == ["good"]
    assert [row["file"] for row in index.manifest["skipped"]] == ["private.md"]


def test_touched_files_update_the_stamps_only(tiny_corpus, tmp_path, fake_encoder):
    """A fresh clone or a touched file changes mtimes, not contents: the next build records the new
    stamps in the manifest and keeps the data folder, rather than writing the whole index again."""
    _age(tiny_corpus)
    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=fake_encoder)
    data_before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    for path in tiny_corpus.rglob("*.*"):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    encoder = FakeEncoder()
    stats = build_index(tiny_corpus, out, encoder=encoder)
    assert stats.embedded == 0 == encoder.passage_count and not stats.written
    data_after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    data_after.pop(Path(".lock"), None), data_before.pop(Path(".lock"), None)
    assert data_after == data_before
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = {row["file"]: row["mtime_ns"] for row in manifest["documents"]}
    assert recorded == {p.relative_to(tiny_corpus).as_posix(): p.stat().st_mtime_ns for p in tiny_corpus.rglob("*.*")}


# 9. Streaming: one document in memory at a time -----------------------------------------------------


def test_the_build_streams_documents_through_memory(make_corpus, tmp_path, monkeypatch):
    """While the encoder runs, the documents read before it are gone from memory: a build holds the
    document it is reading and the passages waiting for the encoder, not the corpus."""
    import gc
    import weakref

    texts = {f"doc{i:02d}.txt": f"Document {i}. " + " ".join(f"Sentence {j} of document {i} says {i * j}."
                                                             for j in range(12)) for i in range(20)}
    docs = make_corpus(texts)
    alive: list[weakref.ref] = []
    real = jobs_module.load_document

    def tracked(path, doc_id=None, root=None):
        doc = real(path, doc_id, root)
        alive.append(weakref.ref(doc))
        return doc

    most = []

    class Watching(FakeEncoder):
        def encode_passages(self, texts, show_progress=False):
            gc.collect()
            most.append(sum(ref() is not None for ref in alive))
            return super().encode_passages(texts, show_progress)

    monkeypatch.setattr(jobs_module, "load_document", tracked)
    stats = build_index(docs, tmp_path / "index", encoder=Watching(), chunk_config=ChunkConfig(200, 0),
                        batch_size=8)
    assert stats.documents == 20 and len(alive) == 20 and len(most) == -(-stats.passages // 8) >= 5
    assert max(most) <= 2, most  # the document being read, and at most the one before it
    index = Index.load(tmp_path / "index")
    assert sorted(index.documents) == sorted(p[:-4] for p in texts)
    for p in index.passages:  # every passage is its document's text at its offsets
        assert index.documents[p.doc_id].text[p.start:p.end] == p.text


def test_the_progress_bar_counts_documents_and_passages(tiny_corpus, tmp_path, fake_encoder, capsys):
    stats = build_index(tiny_corpus, tmp_path / "index", encoder=fake_encoder, show_progress=True)
    err = capsys.readouterr().err
    assert f"{stats.documents}/{stats.documents}" in err and "doc/s" in err
    assert f"{stats.passages} passages" in err and "passages/s" in err


def test_an_unchanged_skipped_file_is_not_read_again(make_corpus, tmp_path, fake_encoder, monkeypatch):
    docs = make_corpus({"good.txt": "The bridge opened in 1932.", "empty.txt": ""})
    _age(docs)
    out = tmp_path / "index"
    build_index(docs, out, encoder=fake_encoder)
    assert [row["file"] for row in json.loads((out / "manifest.json").read_text())["skipped"]] == ["empty.txt"]
    read = []
    real = jobs_module.load_document
    monkeypatch.setattr(jobs_module, "load_document", lambda path, *a: read.append(Path(path).name) or real(path, *a))
    (docs / "new.txt").write_text("The tunnel opened in 1950.", encoding="utf-8")
    stats = build_index(docs, out, encoder=fake_encoder)
    assert read == ["new.txt"] and stats.added == ["new"]
    assert [row["file"] for row in Index.load(out).manifest["skipped"]] == ["empty.txt"]


def test_vectors_line_up_with_passages_across_batches_and_repeated_texts(make_corpus, tmp_path):
    """A document whose passages span several encoder batches, and two files with the same text: every
    passage's vector is its own text's (the oracle: the encoder on that text alone)."""
    long = " ".join(f"Clause {i} sets the fee at {i * 7} pounds." for i in range(60))
    docs = make_corpus({"a.txt": "Short note on fees.", "b.txt": long, "c.txt": long, "d.txt": "Another short note."})
    encoder = FakeEncoder()
    stats = build_index(docs, tmp_path / "index", encoder=encoder, chunk_config=ChunkConfig(120, 0),
                        batch_size=5)
    index = Index.load(tmp_path / "index")
    assert stats.passages == len(index.passages) > 20
    np.testing.assert_allclose(index.dense.reconstruct_n(0, index.dense.ntotal),
                               encoder.embed([p.text for p in index.passages]), rtol=1e-6)
