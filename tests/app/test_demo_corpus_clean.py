"""Trying the Documents tab on the bundled corpus leaves the project as it was: the app serves a copy of
``seeds/`` and ``embeddings/`` (:mod:`qa.app.demo`), and uploads, deletes and their records land there.

The library is driven as the app drives it, on the copy made from the repository's own ``seeds/`` and
``embeddings/``, with the real encoder (an upload is embedded) and a stand-in reader.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.corpus import REPO_ROOT
from helpers.fakes import FirstWordReader

from qa.answering.pipeline import QA
from qa.app.demo import MADE_FROM, DemoCopyError, demo_copy, is_demo_copy
from qa.app.documents import REGISTRY, TRASH, DocumentLibrary, NeedsConfirmation
from qa.cli import serve
from qa.retrieval.retriever import Retriever

BUNDLED = ("seeds", "embeddings")


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under ``folders``, hidden ones included, with its bytes."""
    return {p.as_posix(): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def git_status() -> str | None:
    """``git status --porcelain`` of the bundled folders, untracked and ignored files included; ``None``
    outside a git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=all",
                               "--ignored", "--", *BUNDLED], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout


@pytest.fixture(scope="module")
def bundled_before():
    if not all((REPO_ROOT / name).is_dir() for name in BUNDLED):
        pytest.skip("the bundled corpus and its index are not here")
    return snapshot(*(REPO_ROOT / name for name in BUNDLED)), git_status()


def test_uploading_and_deleting_on_the_bundled_corpus_changes_only_the_copy(bundled_before, tmp_path):
    files_before, status_before = bundled_before
    docs, index = demo_copy(REPO_ROOT / "seeds", REPO_ROOT / "embeddings", root=tmp_path / ".qa-demo")
    assert (docs, index) == (tmp_path / ".qa-demo" / "seeds", tmp_path / ".qa-demo" / "embeddings")
    # The copy serves the shipped index as it is: nothing is embedded to start.
    qa = QA(Retriever.load(index), FirstWordReader(tmp_path), threshold=0.0)
    assert sorted(qa.documents) == sorted(p.stem for p in (REPO_ROOT / "seeds").glob("*.txt"))
    library = DocumentLibrary(qa, docs, index)

    added = library.upload("ferry.txt", b"Ferry timetable\n\nThe ferry to Mull leaves Oban at nine every morning.\n")
    assert added.embedded >= 1 and "ferry.txt" in {row["file"] for row in library.rows()}
    library.delete(added.doc_id)  # an upload: removed
    bundled_id = sorted(qa.documents)[0]
    with pytest.raises(NeedsConfirmation):
        library.delete(bundled_id)
    moved = library.delete(bundled_id, confirm=True)  # a file of the corpus: to the copy's trash
    assert bundled_id not in library.live.documents and TRASH in moved.message
    library.rescan()

    # What the app did is in the copy ...
    assert (docs / REGISTRY).is_file() and any((docs / TRASH).iterdir())
    assert not (docs / "ferry.txt").exists()
    # ... and the project's seeds/ and embeddings/ are as they were, byte for byte and for git.
    assert snapshot(*(REPO_ROOT / name for name in BUNDLED)) == files_before
    assert git_status() == status_before


def test_the_copy_is_made_once_without_hidden_files_and_kept(tmp_path):
    bundled = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "seeds", bundled / "seeds", ignore=shutil.ignore_patterns(".*"))
    (bundled / "seeds" / ".qa-trash").mkdir()  # left by an app that wrote into the corpus
    (bundled / "seeds" / ".qa-trash" / "old.txt").write_text("A file deleted before.", encoding="utf-8")
    (bundled / "seeds" / REGISTRY).write_text("{}", encoding="utf-8")
    root = tmp_path / ".qa-demo"

    docs, index = demo_copy(bundled / "seeds", bundled / "embeddings", root=root)  # no index shipped: none copied
    assert sorted(p.name for p in docs.rglob("*")) == sorted(p.name for p in (REPO_ROOT / "seeds").glob("*.txt"))
    assert not index.exists() and is_demo_copy(docs) and not is_demo_copy(bundled / "seeds")
    (docs / "mine.txt").write_text("Uploaded in an earlier session.", encoding="utf-8")
    assert demo_copy(bundled / "seeds", bundled / "embeddings", root=root) == (docs, index)
    assert (docs / "mine.txt").is_file()  # kept across restarts


def test_a_folder_in_the_way_is_not_taken_over(tmp_path):
    root = tmp_path / ".qa-demo"
    root.mkdir()
    (root / "notes.txt").write_text("The user's own notes.", encoding="utf-8")
    with pytest.raises(DemoCopyError, match="is not a copy of the bundled corpus"):
        demo_copy(REPO_ROOT / "seeds", REPO_ROOT / "embeddings", root=root)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"] and not (root / MADE_FROM).exists()


def test_serve_serves_the_copy_for_the_bundled_corpus_only(tmp_path, monkeypatch):
    for name in BUNDLED:
        shutil.copytree(REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns(".*"))
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)  # a project folder with the bundled seeds/ and embeddings/

    assert serve.served("seeds", None) == (Path(".qa-demo/seeds"), Path(".qa-demo/embeddings"))
    assert serve.served("seeds", "embeddings") == (Path(".qa-demo/seeds"), Path(".qa-demo/embeddings"))
    assert serve.served("seeds", "milvus:demo.db") == (Path(".qa-demo/seeds"), "milvus:demo.db")
    assert serve.served("mine", None) == (Path("mine"), Path(".qa-index/mine"))
    # The copy's index still finds its documents beside it, so it loads as current.
    assert serve._settings_of(".qa-demo/embeddings")["backend"] == "onnx-int8"
    from qa.stores.local.folder import read_manifest
    from qa.stores.manifest import stale_reason

    assert stale_reason(read_manifest(".qa-demo/embeddings"), ".qa-demo/embeddings") is None
