"""Loading a corpus folder robustly: unique ids, bad files skipped one by one, encodings with a BOM,
symbolic links, and the file and source hash each document carries."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from helpers.corpus import minimal_pdf

from qa.errors import MissingPath
from qa.ingest.documents import DocumentError, document_ids, load_document, load_documents


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


# 5. One bad file is skipped with a warning; the rest loads -------------------------------------------


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "qa.ingest.documents"]


def _encrypted_pdf(text: str, password: str) -> bytes:
    """A real PDF encrypted by pypdf's writer (RC4: no extra package needed) with a user password."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(minimal_pdf([text])))
    writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _only_good_loads(folder, caplog) -> str:
    """Load ``folder``: only good.txt is loaded, and the one warning logged is returned."""
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        docs = load_documents(folder)
    assert [d.id for d in docs] == ["good"]
    (warning,) = _warnings(caplog)
    return warning


def test_an_encrypted_pdf_is_skipped_with_a_warning_saying_so(make_corpus, caplog):
    folder = make_corpus({"good.txt": "A good document about bread.", "locked.pdf": _encrypted_pdf("Secret plan.", "pw")})
    warning = _only_good_loads(folder, caplog)
    assert "locked.pdf" in warning and "password" in warning


def test_a_pdf_needing_a_missing_crypto_package_is_skipped(make_corpus, caplog, monkeypatch):
    # AES-encrypted PDFs need the cryptography package; without it pypdf raises DependencyError
    # (which is not a PdfReadError). pypdf's writer can't make such a file without that package either,
    # so the reader raises it here.
    import pypdf
    from pypdf.errors import DependencyError

    def needs_cryptography(*args, **kwargs):
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf, "PdfReader", needs_cryptography)
    folder = make_corpus({"good.txt": "A good document about bread.", "aes.pdf": minimal_pdf(["Locked."])})
    warning = _only_good_loads(folder, caplog)
    assert "aes.pdf" in warning and "cryptography" in warning


def test_a_file_that_cannot_be_read_is_skipped_with_the_reason(make_corpus, caplog, monkeypatch):
    folder = make_corpus({"good.txt": "A good document about bread.", "private.md": "Not for you."})
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "private.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    warning = _only_good_loads(folder, caplog)
    assert "private.md" in warning and "Permission denied" in warning


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="chmod does not deny root")
def test_a_file_without_read_permission_is_skipped(make_corpus, caplog):
    folder = make_corpus({"good.txt": "A good document about bread.", "private.md": "Not for you."})
    (folder / "private.md").chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
            docs = load_documents(folder)
    finally:
        (folder / "private.md").chmod(0o644)
    assert [d.id for d in docs] == ["good"]
    assert any("private.md" in w for w in _warnings(caplog))


# 3. Text with a byte order mark is decoded by it ----------------------------------------------------

BOM_TEXT = "Café notes\n\nThe crème brûlée costs £4 — “quoted”. 日本語 too.\n"


@pytest.mark.parametrize("encoding, bom", [
    ("utf-8", b"\xef\xbb\xbf"),
    ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"),
    ("utf-32-le", b"\xff\xfe\x00\x00"),
    ("utf-32-be", b"\x00\x00\xfe\xff"),
])
@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "notes.html"])
def test_text_with_a_byte_order_mark_is_decoded_by_it(make_corpus, caplog, encoding, bom, name):
    text = f"<p>{BOM_TEXT}</p>" if name.endswith(".html") else BOM_TEXT
    folder = make_corpus({name: bom + text.encode(encoding)})
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        (doc,) = load_documents(folder)
    assert not _warnings(caplog)
    expected = " ".join(BOM_TEXT.split()) if name.endswith(".html") else BOM_TEXT
    assert doc.text.replace("\n\n", " ") == expected.replace("\n\n", " ")
    assert doc.title == "Café notes"


def test_utf16_without_a_bom_is_still_skipped_as_binary(make_corpus, caplog):
    # Without a BOM the NUL bytes can't be told from a binary file's: skipped, with the reason.
    folder = make_corpus({"good.txt": "A good document.", "nobom.txt": "Plain words here.".encode("utf-16-le")})
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        assert [d.id for d in load_documents(folder)] == ["good"]
    (warning,) = _warnings(caplog)
    assert "nobom.txt" in warning and "binary" in warning


# 4. Symbolic links ---------------------------------------------------------------------------------


@pytest.fixture
def linked_corpus(tmp_path: Path) -> Path:
    """docs/ with links to a file inside, a file outside, a folder outside, a cycle and a dangling link."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    (outside / "deep").mkdir(parents=True)
    (docs / "sub" / "inner.txt").write_text("Inner text about owls.", encoding="utf-8")
    (outside / "far.md").write_text("# Far away\n\nText about the sea.", encoding="utf-8")
    (outside / "deep" / "deeper.txt").write_text("Deep text about caves.", encoding="utf-8")
    (docs / "to_inner.txt").symlink_to(Path("sub") / "inner.txt")
    (docs / "to_far.md").symlink_to(outside / "far.md")
    (docs / "outdir").symlink_to(outside, target_is_directory=True)
    (docs / "sub" / "up").symlink_to(Path(".."), target_is_directory=True)  # a cycle: docs/sub/up/sub/up/...
    (docs / "sub" / "self").symlink_to(docs, target_is_directory=True)
    return docs


def test_a_linked_file_loads_under_the_links_own_name(linked_corpus):
    docs = {d.id: d for d in load_documents(linked_corpus)}
    assert docs["to_far"].text == "# Far away\n\nText about the sea."  # a link to a file outside the folder
    assert docs["to_far"].path == str(linked_corpus / "to_far.md")
    assert docs["to_inner"].text == docs["sub/inner"].text == "Inner text about owls."  # the link and its target
    assert docs["to_inner"].path == str(linked_corpus / "to_inner.txt")


def test_a_linked_folder_is_not_followed_and_said_so(linked_corpus, caplog):
    # Links to folders (outside the corpus, or back into it: a cycle) are not followed, so loading
    # ends and nothing is read twice; each one is named in an info line.
    with caplog.at_level(logging.INFO, logger="qa.ingest.documents"):
        ids = [d.id for d in load_documents(linked_corpus)]
    assert ids == ["sub/inner", "to_far", "to_inner"]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "not followed" in r.getMessage()]
    for link in ("outdir", "sub/up", "sub/self"):
        assert sum(str(linked_corpus / link) in line.split() for line in info) == 1, info


def test_a_dangling_link_is_skipped_with_a_warning(linked_corpus, caplog):
    (linked_corpus / "gone.txt").symlink_to(linked_corpus / "deleted.txt")
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        ids = [d.id for d in load_documents(linked_corpus)]
    assert ids == ["sub/inner", "to_far", "to_inner"]
    (warning,) = _warnings(caplog)
    assert "gone.txt" in warning and "broken link" in warning


# 6. Each document carries its file and the hash of the bytes read ------------------------------------


def _sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_documents_carry_their_file_and_the_hash_of_their_bytes(make_corpus):
    files = {
        "notes.txt": "Plain notes about the meeting.\n",
        "guides/setup.md": "\ufeff# Setup guide\n\nInstall the package first.\n",  # BOM: hashed as read, with it
        "guides/web/page.html": "<html><body><h1>Page</h1><p>A paragraph of the page.</p></body></html>",
        "reports/2024/annual.pdf": minimal_pdf(["Annual report of the clinic.", "Second page: finances."]),
        "utf16.txt": b"\xff\xfe" + "Text in UTF-16.".encode("utf-16-le"),
    }
    folder = make_corpus(files)
    docs = load_documents(folder)
    assert sorted(d.file for d in docs) == sorted(files)
    for doc in docs:
        assert doc.source_hash == _sha16((folder / doc.file).read_bytes()), doc.file
        assert Path(doc.path) == folder / doc.file


def test_a_linked_document_carries_the_links_file_and_its_targets_hash(linked_corpus):
    docs = {d.id: d for d in load_documents(linked_corpus)}
    assert docs["to_far"].file == "to_far.md"
    assert docs["to_far"].source_hash == _sha16((linked_corpus.parent / "outside" / "far.md").read_bytes())


def test_load_document_computes_file_from_the_root_it_is_given(make_corpus):
    folder = make_corpus({"a/b/c.txt": "Deep file text."})
    doc = load_document(folder / "a" / "b" / "c.txt", "a/b/c", root=folder)
    assert (doc.id, doc.file, doc.source_hash) == ("a/b/c", "a/b/c.txt", _sha16(b"Deep file text."))
    assert load_document(folder / "a" / "b" / "c.txt").file == "c.txt"  # no root: the file's own folder


def test_the_hash_changes_with_the_bytes_even_when_the_text_does_not(make_corpus):
    # An HTML page whose markup changes but whose visible text does not: the text is equal, the hash is not.
    first = load_documents(make_corpus({"p.html": "<p>Same words.</p>"}, name="one"))[0]
    second = load_documents(make_corpus({"p.html": "<div>Same words.</div>"}, name="two"))[0]
    assert first.text == second.text and first.source_hash != second.source_hash


# 9. Errors a user can fix -------------------------------------------------------------------------


def test_a_missing_folder_is_a_missing_path(tmp_path):
    with pytest.raises(MissingPath, match="not found.*--docs"):
        load_documents(tmp_path / "nope")


def test_a_file_given_as_the_folder_is_a_missing_path_saying_so(tmp_path):
    (tmp_path / "single.txt").write_text("Some text.", encoding="utf-8")
    with pytest.raises(MissingPath, match="not a folder"):
        load_documents(tmp_path / "single.txt")
