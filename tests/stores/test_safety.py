"""The index folder is written safely: what --out may replace, one writer at a time, an atomic
publish that survives a kill at any step, and one-line errors for corrupt files or a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.corpus import REPO_ROOT, snapshot
from helpers.fakes import FakeEncoder, GatedEncoder

import qa.stores.local.build as build_module
from qa.errors import UnsafeDestination, UserError
from qa.stores.base import IndexNotFoundError
from qa.stores.local.build import build_index
from qa.stores.local.folder import read_manifest
from qa.stores.local.index import Index


def _data(index: Path) -> Path:
    """The folder that holds the index's data files (the manifest names it; old indexes keep them on top)."""
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    return index / manifest.get("data", ".")


def _no_model(*args, **kwargs):
    raise AssertionError("the embedding model was loaded before the destination was checked")


def _one_line(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message, message
    return message


# 1. What --out may replace ------------------------------------------------------------------------


def test_out_holding_other_files_is_refused_before_the_model_loads(tiny_corpus, tmp_path, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    (out / "photos").mkdir()
    before = snapshot(out)
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    with pytest.raises(UnsafeDestination) as err:
        build_index(tiny_corpus, out)
    assert "notes.txt" in _one_line(err.value) or "not an index" in str(err.value)
    assert snapshot(out) == before and (out / "photos").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "mine"]


def test_out_equal_to_the_documents_folder_is_refused(tiny_corpus, monkeypatch):
    before = snapshot(tiny_corpus)
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    with pytest.raises(UnsafeDestination, match="documents") as err:
        build_index(tiny_corpus, tiny_corpus)
    _one_line(err.value)
    assert snapshot(tiny_corpus) == before


def test_out_inside_the_documents_folder_is_refused(tiny_corpus, fake_encoder):
    before = snapshot(tiny_corpus)
    with pytest.raises(UnsafeDestination, match="inside the documents folder"):
        build_index(tiny_corpus, tiny_corpus / "index", encoder=fake_encoder)
    assert snapshot(tiny_corpus) == before and not (tiny_corpus / "index").exists()


def test_documents_inside_the_out_folder_are_refused(make_corpus, tmp_path, fake_encoder):
    docs = make_corpus(name="project/docs")
    before = snapshot(tmp_path / "project")
    with pytest.raises(UnsafeDestination, match="documents folder .* inside"):
        build_index(docs, tmp_path / "project", encoder=fake_encoder)
    assert snapshot(tmp_path / "project") == before


def test_out_that_is_a_file_is_refused_and_kept(tiny_corpus, tmp_path, monkeypatch):
    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF-1.4 precious")
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    with pytest.raises(UnsafeDestination, match="file"):
        build_index(tiny_corpus, out)
    assert out.read_bytes() == b"%PDF-1.4 precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "report.pdf"]  # nothing hidden beside it


def test_out_under_a_file_is_refused_before_the_model_loads(tiny_corpus, tmp_path, monkeypatch):
    (tmp_path / "plain.txt").write_text("x", encoding="utf-8")
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    with pytest.raises(UserError, match="plain.txt") as err:
        build_index(tiny_corpus, tmp_path / "plain.txt" / "index")
    _one_line(err.value)


def test_out_in_a_read_only_place_is_refused_before_the_model_loads(tiny_corpus, tmp_path, monkeypatch):
    # Tests run as root, which ignores permission bits: the file system's refusal is simulated.
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if "readonly" in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    with pytest.raises(UserError, match="Permission denied") as err:
        build_index(tiny_corpus, tmp_path / "readonly" / "index")
    _one_line(err.value)


def test_an_empty_folder_or_an_index_of_ours_may_be_replaced(tiny_corpus, tmp_path, fake_encoder):
    (tmp_path / "empty").mkdir()
    build_index(tiny_corpus, tmp_path / "empty", encoder=fake_encoder)
    build_index(tiny_corpus, tmp_path / "empty", encoder=fake_encoder, incremental=False)
    assert len(Index.load(tmp_path / "empty").documents) == 4


def test_loading_a_documents_folder_says_it_holds_documents(tiny_corpus):
    with pytest.raises(IndexNotFoundError) as err:
        Index.load(tiny_corpus)
    message = _one_line(err.value)
    assert "documents" in message and f"--out {tiny_corpus}" not in message


# 2. One writer at a time; what a dead writer left is cleaned up -------------------------------------


def test_a_second_writer_fails_at_once_naming_the_first(tiny_corpus, tmp_path, small_chunks):
    out = tmp_path / "index"
    first = GatedEncoder()
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(errors, build_index, tiny_corpus, out, encoder=first,
                                                  chunk_config=small_chunks))
    thread.start()
    try:
        assert first.entered.wait(30)
        second = FakeEncoder()
        with pytest.raises(UserError) as err:
            build_index(tiny_corpus, out, encoder=second, chunk_config=small_chunks)
        message = _one_line(err.value)
        assert f"pid {os.getpid()}" in message and "started" in message
        assert second.passage_count == 0
    finally:
        first.release.set()
        thread.join(30)
    assert errors == []
    assert len(Index.load(out).documents) == 4


def _run(errors: list, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except BaseException as err:  # reported to the test thread
        errors.append(err)


def test_debris_of_a_dead_writer_is_cleaned_up(tiny_corpus, tiny_index, fake_encoder, small_chunks):
    # What the earlier builds left beside the index (temporary and backup folders of ours) ...
    legacy = tiny_index.parent / ".index.building-abc123"
    legacy.mkdir()
    (legacy / "passages.jsonl").write_text("{}\n", encoding="utf-8")
    user_file = tiny_index.parent / ".index.old-1700000000000"
    user_file.write_text("a user's file the old code hid here", encoding="utf-8")
    # ... and a half-written version and manifest inside it.
    half = tiny_index / "v-000099"
    half.mkdir()
    (half / "passages.jsonl").write_text("{}\n", encoding="utf-8")
    (tiny_index / "manifest.json.tmp-4242").write_text("{", encoding="utf-8")
    (tiny_corpus / "weather.txt").write_text("New weather text about hail.", encoding="utf-8")
    build_index(tiny_corpus, tiny_index, encoder=fake_encoder, chunk_config=small_chunks)
    assert not legacy.exists() and not half.exists() and not (tiny_index / "manifest.json.tmp-4242").exists()
    assert user_file.read_text(encoding="utf-8") == "a user's file the old code hid here"  # not ours: kept
    Index.load(tiny_index)


# 3. The publish is one atomic step -----------------------------------------------------------------


def _whole(index: Index) -> None:
    assert index.dense.ntotal == len(index.passages) == index.manifest["passages"]
    assert {p.doc_id for p in index.passages} == set(index.documents)
    for p in index.passages:
        assert index.documents[p.doc_id].text[p.start : p.end] == p.text


# Every step of a build's write, in order; a kill may land after any of them.
STEPS = ("version_folder", "passages", "documents", "dense", "bm25", "synced", "manifest_tmp", "pointer", "cleanup")


def test_the_publish_steps_are_those_tested():
    from qa.stores.local import folder

    assert folder.STEPS == STEPS


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_leaves_a_whole_index(step, tiny_corpus, tiny_index, small_chunks, tmp_path, monkeypatch):
    before = Index.load(tiny_index)
    (tiny_corpus / "weather.txt").write_text("Weather notes\n\nHail is ice from thunderstorms.\n", encoding="utf-8")
    clean = tmp_path / "clean"
    build_index(tiny_corpus, clean, encoder=FakeEncoder(), chunk_config=small_chunks)
    after = Index.load(clean)

    def crash(name: str) -> None:
        if name == step:
            raise KeyboardInterrupt(f"killed after {name}")

    from qa.stores.local import folder

    monkeypatch.setattr(folder, "after_step", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(tiny_corpus, tiny_index, encoder=FakeEncoder(), chunk_config=small_chunks)
    monkeypatch.undo()
    loaded = Index.load(tiny_index, check_documents=False)
    _whole(loaded)
    assert loaded.passages in (before.passages, after.passages)
    # The next build finishes the job and leaves one version.
    build_index(tiny_corpus, tiny_index, encoder=FakeEncoder(), chunk_config=small_chunks)
    assert Index.load(tiny_index).passages == after.passages
    assert [p.name for p in tiny_index.iterdir() if p.name.startswith("v-")] == [_data(tiny_index).name]


_KILLED_BUILD = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers.fakes import FakeEncoder, GatedEncoder
from qa.ingest.chunking import ChunkConfig
from qa.stores.local import folder
from qa.stores.local.build import build_index

def stop(name):
    if name == {step!r}:
        open({marker!r}, "w").close()
        time.sleep(60)

folder.after_step = stop
build_index({docs!r}, {out!r}, encoder=FakeEncoder(), chunk_config=ChunkConfig(100, 0))
"""


@pytest.mark.parametrize("step", ["bm25", "pointer"])
def test_a_build_killed_for_real_leaves_a_whole_index(step, tiny_corpus, tiny_index, small_chunks, tmp_path):
    before = Index.load(tiny_index)
    (tiny_corpus / "weather.txt").write_text("Weather notes\n\nHail is ice from thunderstorms.\n", encoding="utf-8")
    marker = tmp_path / "reached"
    code = _KILLED_BUILD.format(tests=str(REPO_ROOT / "tests"), step=step, marker=str(marker),
                                docs=str(tiny_corpus), out=str(tiny_index))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the build did not reach {step} (exit {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded = Index.load(tiny_index, check_documents=False)
    _whole(loaded)
    if step == "bm25":
        assert loaded.passages == before.passages
    # The lock died with the process; the next build succeeds and cleans up.
    build_index(tiny_corpus, tiny_index, encoder=FakeEncoder(), chunk_config=small_chunks)
    _whole(Index.load(tiny_index))
    assert [p.name for p in tiny_index.iterdir() if p.name.startswith("v-")] == [_data(tiny_index).name]


def test_an_index_in_the_old_flat_layout_loads_and_is_upgraded(tiny_corpus, tiny_index, fake_encoder, small_chunks):
    # The layout of format 1: the data files and the manifest side by side at the top.
    data = _data(tiny_index)
    manifest = json.loads((tiny_index / "manifest.json").read_text(encoding="utf-8"))
    if data != tiny_index:
        for p in data.iterdir():
            p.rename(tiny_index / p.name)
        data.rmdir()
        manifest = {k: v for k, v in manifest.items() if k != "data"} | {"format_version": 1}
        (tiny_index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = Index.load(tiny_index)
    _whole(before)
    build_index(tiny_corpus, tiny_index, encoder=fake_encoder, chunk_config=small_chunks, incremental=False)
    assert Index.load(tiny_index).passages == before.passages
    assert not (tiny_index / "passages.jsonl").exists() and not (tiny_index / "dense.faiss").exists()


# 5. Corrupt files and a full disk ------------------------------------------------------------------


def _truncate_dense(index: Path) -> str:
    path = _data(index) / "dense.faiss"
    path.write_bytes(path.read_bytes()[:100])
    return "dense.faiss"


def _manifest_list(index: Path) -> str:
    (index / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    return "manifest.json"


def _manifest_without_documents(index: Path) -> str:
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    del manifest["documents"]
    (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return "manifest.json"


def _manifest_not_json(index: Path) -> str:
    (index / "manifest.json").write_text('{"format_version": ', encoding="utf-8")
    return "manifest.json"


def _no_passages(index: Path) -> str:
    (_data(index) / "passages.jsonl").unlink()
    return "passages.jsonl"


def _bad_passage_line(index: Path) -> str:
    with (_data(index) / "passages.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "x"\n')
    return "passages.jsonl"


@pytest.mark.parametrize("corrupt", [_truncate_dense, _manifest_list, _manifest_without_documents,
                                     _manifest_not_json, _no_passages, _bad_passage_line])
def test_a_corrupt_index_file_is_one_line_naming_it(corrupt, tiny_index):
    name = corrupt(tiny_index)
    with pytest.raises(UserError) as err:
        Index.load(tiny_index)
    message = _one_line(err.value)
    assert name in message and f"qa index --docs" in message and f"--out {tiny_index}" in message


def test_read_manifest_of_a_corrupt_manifest_is_one_line(tiny_index):
    _manifest_list(tiny_index)
    with pytest.raises(UserError, match="manifest.json") as err:
        read_manifest(tiny_index)
    _one_line(err.value)


def test_a_corrupt_index_can_be_rebuilt_in_place(tiny_corpus, tiny_index, fake_encoder, small_chunks, caplog):
    _truncate_dense(tiny_index)
    with caplog.at_level("WARNING"):
        build_index(tiny_corpus, tiny_index, encoder=fake_encoder, chunk_config=small_chunks)
    assert any("dense.faiss" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    _whole(Index.load(tiny_index))


@pytest.mark.parametrize("where", ["passages", "dense"])
def test_disk_full_leaves_the_previous_index_and_says_so(where, tiny_corpus, tiny_index, small_chunks, monkeypatch):
    import faiss

    before = Index.load(tiny_index)
    files_before = snapshot(tiny_index)
    (tiny_corpus / "weather.txt").write_text("New weather text about hail.", encoding="utf-8")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "dense":
        monkeypatch.setattr(faiss, "write_index", full)
    else:
        monkeypatch.setattr(build_module, "write_rows", full)
    with pytest.raises(UserError) as err:
        build_index(tiny_corpus, tiny_index, encoder=FakeEncoder(), chunk_config=small_chunks)
    message = _one_line(err.value)
    assert "No space left on device" in message and "previous index" in message
    monkeypatch.undo()
    after = Index.load(tiny_index, check_documents=False)
    assert after.passages == before.passages
    np.testing.assert_array_equal(after.dense.reconstruct_n(0, after.dense.ntotal),
                                  before.dense.reconstruct_n(0, before.dense.ntotal))
    files_after = snapshot(tiny_index)
    assert {k: v for k, v in files_after.items() if not k.startswith(".")} == \
        {k: v for k, v in files_before.items() if not k.startswith(".")}


# 6. An index of another folder is replaced only when asked -------------------------------------------


def test_qa_index_refuses_to_replace_the_index_of_another_folder(make_corpus, tmp_path, monkeypatch, capsys):
    """The probe: qa index --docs B --out I, I built from A, silently replaced A's index with B's."""
    from qa.cli import main

    a = make_corpus(name="a")
    b = make_corpus({"ferry.txt": "The ferry leaves at nine."}, name="b")
    index = tmp_path / "index"
    build_index(a, index, encoder=FakeEncoder())
    before = snapshot(index)
    monkeypatch.setattr(build_module, "load_encoder", _no_model)
    assert main(["index", "--docs", str(b), "--out", str(index), "--quiet"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "--replace" in said and str(a.resolve()) in said
    assert snapshot(index) == before
    # Asked for, it is replaced.
    monkeypatch.setattr(build_module, "load_encoder", lambda *args, **kwargs: FakeEncoder())
    assert main(["index", "--docs", str(b), "--out", str(index), "--quiet", "--replace"]) == 0
    assert [row["file"] for row in read_manifest(index)["documents"]] == ["ferry.txt"]
    # The same folder again needs no --replace.
    assert main(["index", "--docs", str(b), "--out", str(index), "--quiet"]) == 0


def test_qa_serve_does_not_rebuild_a_stale_index_of_another_folder(make_corpus, tmp_path, monkeypatch):
    import qa.answering.pipeline as pipeline
    import qa.stores.address as address
    from qa.cli.serve import load_qa
    from qa.stores.base import StaleIndexError

    a = make_corpus(name="a")
    b = make_corpus({"ferry.txt": "The ferry leaves at nine."}, name="b")
    index = tmp_path / "index"
    build_index(a, index, encoder=FakeEncoder())

    def stale(*args, **kwargs):
        raise StaleIndexError("The index is out of date.")

    monkeypatch.setattr(pipeline.QA, "load", stale)
    monkeypatch.setattr(address, "build_store", _no_model)
    with pytest.raises(UserError, match="holds the documents of"):
        load_qa(b, index)
