"""Loading a corpus folder robustly: unique ids, bad files skipped one by one, encodings with a BOM,
symbolic links, and the file and source hash each document carries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qa.ingest.documents import DocumentError, document_ids, load_documents


def _by_name(docs) -> dict[str, str]:
    """{file name: id}, from the documents' own paths (for corpora without subfolders)."""
    return {Path(d.path).name: d.id for d in docs}


# 1. Ids are unique by construction ------------------------------------------------------------------


def test_a_stem_that_equals_another_files_fallback_id_gets_its_full_path(make_corpus):
    # a.txt and a.md share the stem "a", so both fall back to their full names; a.txt.txt's stem is
    # "a.txt", the fallback of a.txt: it must not take that id (one of the two texts would be lost).
    folder = make_corpus({"a.txt": "Text of a dot txt.", "a.md": "Text of a dot md.", "a.txt.txt": "Text of the double."})
    docs = load_documents(folder)
    assert len(docs) == 3
    assert len({d.id for d in docs}) == 3
    texts = {d.text for d in docs}
    assert texts == {"Text of a dot txt.", "Text of a dot md.", "Text of the double."}
    # Every id that had to change is the file's full relative path.
    assert _by_name(docs) == {"a.txt": "a.txt", "a.md": "a.md", "a.txt.txt": "a.txt.txt"}


def test_ids_without_a_collision_stay_the_stem(make_corpus):
    # Stable ids: only files in a collision change; the others keep the stem they always had.
    folder = make_corpus({"a.txt": "One.", "a.md": "Two.", "b.txt": "Three.", "sub/a.txt": "Four.", "c.md.txt": "Five."})
    assert {d.id: d.text for d in load_documents(folder)} == {
        "a.txt": "One.", "a.md": "Two.", "b": "Three.", "sub/a": "Four.", "c.md": "Five."}


def test_collisions_across_folders_resolve_to_full_paths(make_corpus):
    # "x/y.md" has the stem "x/y", which is also the stem of "x/y.txt"; "x/y.txt.md" has the stem
    # "x/y.txt", the fallback of "x/y.txt": a chain of three, resolved to three full paths.
    folder = make_corpus({"x/y.txt": "First.", "x/y.md": "Second.", "x/y.txt.md": "Third.", "x/z.txt": "Fourth."})
    docs = load_documents(folder)
    assert sorted(d.id for d in docs) == ["x/y.md", "x/y.txt", "x/y.txt.md", "x/z"]


def test_a_collision_left_after_full_paths_is_a_document_error_naming_both(tmp_path):
    # Full relative paths are unique on a real disk; the same file listed twice is the only way left.
    path = tmp_path / "dup.txt"
    with pytest.raises(DocumentError, match="dup.txt.*dup.txt"):
        document_ids(tmp_path, [path, path])
