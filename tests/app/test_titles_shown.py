"""What a user sees of each document: a real title or its file name, never a hash id; its file named in
the Documents tab and in a delete's question; the files indexing skipped listed there with the reason;
and a damaged PDF's repairs in one log line that names the file."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path

import pytest
from helpers.corpus import minimal_pdf
from helpers.fakes import FakeEncoder

from qa.answering.pipeline import QA
from qa.app.documents import DocumentLibrary, NeedsConfirmation
from qa.app.documents_panel import render_library
from qa.ingest.documents import document_title, load_documents, opaque_name
from qa.ingest.notices import gathered
from qa.reading.reader import ReaderResult
from qa.retrieval.retriever import Retriever
from qa.stores.local.build import build_index
from qa.stores.local.index import Index

HASH_ID = re.compile(r"\b[0-9a-f]{12,}\b")  # what the two bundled documents showed as ("003 209851d2c1bf9842")


class NoReader:
    """The pipeline's reader slot; the Documents tab never reads."""

    def __init__(self, folder: Path):
        self.path = folder

    def read(self, question, passages):
        return ReaderResult([], 0.0)


@pytest.mark.parametrize("name, opaque", [
    ("003_209851d2c1bf9842.txt", True), ("3f2a9c1e-7b4d-4e2a-9f1c-0a1b2c3d4e5f.pdf", True), ("2024-03-01.md", True),
    ("scan_0042.pdf", False), ("IMG_2024.pdf", False), ("facade.txt", False), ("annual_report.docx", False),
])
def test_a_name_of_numbers_and_hashes_is_opaque(name, opaque):
    assert opaque_name(name) is opaque


@pytest.mark.parametrize("text, by_hash, by_name", [
    # The first line is two sentences: the first one, whole, without its full stop.
    ("Pilot schemes have been slow to develop links. Nicola Walsh and colleagues report\n\nThe body.\n",
     "Pilot schemes have been slow to develop links", "Ferry notes"),
    # A one-word section label and a dated byline are passed over.
    ("FEEDBACK\n\nPublished: 02/06/2005, Volume II5\n\nSince their creation, doubts have lingered. But together, "
     "they are stronger.\n", "Since their creation, doubts have lingered", "Ferry notes"),
    # A line that reads as a title comes first, whatever the file's name.
    ("Ferry timetable\n\nThe ferry leaves at nine.\n", "Ferry timetable", "Ferry timetable"),
])
def test_a_document_named_by_a_hash_takes_its_first_sentence(text, by_hash, by_name):
    assert document_title(text, "004_474e51ade5268c1c.txt") == by_hash
    assert document_title(text, "ferry_notes.txt") == by_name  # a name that says something is kept


def test_a_first_sentence_too_long_for_a_title_is_cut_at_a_word_and_says_so():
    sentence = "Doubts " + "about the robustness of primary care trusts " * 8 + "have lingered."
    title = document_title(sentence + "\n\nBody.\n", "004_474e51ade5268c1c.txt")
    assert title.endswith("…") and len(title) <= 121
    assert sentence.startswith(title[:-1]) and sentence[len(title) - 1] == " "  # cut between two words


def test_the_shipped_index_names_every_document_by_title_and_file(bundled_copy):
    index = Index.load(bundled_copy / "embeddings", check_documents=True)
    files = sorted(p.name for p in (bundled_copy / "seeds").iterdir())
    assert sorted(d.file for d in index.documents.values()) == files
    for doc in index.documents.values():
        assert not HASH_ID.search(doc.title), doc.title
        assert doc.title == load_documents(bundled_copy / "seeds")[sorted(index.documents).index(doc.id)].title


def test_the_documents_tab_and_a_delete_name_the_file(bundled_copy, tmp_path):
    shutil.copytree(bundled_copy, tmp_path / "corpus")
    docs, index = tmp_path / "corpus" / "seeds", tmp_path / "corpus" / "embeddings"
    library = DocumentLibrary(QA(Retriever.load(index), NoReader(tmp_path), threshold=0.0), docs, index)
    html = render_library(library.rows())
    for doc in library.live.documents.values():
        card = re.search(rf'data-doc="{doc.id}">.*?class="qa-lib-meta">([^<]*)<', html).group(1)
        assert card.startswith(f"{doc.file} · "), card
        assert f'>{doc.title}</div>' in html.replace("&#x27;", "'")
        with pytest.raises(NeedsConfirmation, match=re.escape(doc.file)):
            library.delete(doc.id)


def test_files_indexing_skipped_are_listed_with_the_reason(make_corpus, tmp_path, small_chunks):
    folder = make_corpus({"ferry.txt": "Ferry timetable\n\nThe ferry to Mull leaves Oban at nine.\n",
                          "empty.md": "   \n", "photo.txt": b"GIF89a\x00\x00\x01binary"})
    encoder = FakeEncoder()
    index = tmp_path / "index"
    build_index(folder, index, encoder=encoder, chunk_config=small_chunks)
    library = DocumentLibrary(QA(Retriever.load(index, encoder=encoder), NoReader(tmp_path), threshold=0.0),
                              folder, index)
    assert library.skipped() == [{"file": "empty.md", "reason": "empty document (no text)"},
                                 {"file": "photo.txt", "reason": "binary file (contains NUL bytes)"}]
    html = render_library(library.rows(), skipped=library.skipped())
    listed = re.search(r'class="qa-lib-skipped".*?</div>', html).group(0)
    assert "2 files in the folder are not indexed" in listed
    assert '<span class="qa-lib-file">photo.txt</span>: binary file (contains NUL bytes)' in listed
    assert "ferry.txt" not in listed
    # A skipped file put right is indexed by a re-scan and leaves the list.
    (folder / "empty.md").write_text("# Opening hours\n\nWe open at eight.\n", encoding="utf-8")
    library.rescan()
    assert [row["file"] for row in library.skipped()] == ["photo.txt"]


def _damaged_pdf() -> bytes:
    """A PDF whose cross-reference offsets are all wrong: pypdf repairs it, logging each repair."""
    raw = minimal_pdf(["The ferry leaves at nine.", "Second page."])
    raw = re.sub(rb"startxref\n\d+", b"startxref\n999", raw)
    return re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m.group(1)) + 3), raw)


def test_a_damaged_pdf_gives_one_warning_that_names_it(make_corpus, caplog):
    folder = make_corpus({"minutes.pdf": _damaged_pdf(), "notes.txt": "Board notes\n\nThe board met.\n"})
    with caplog.at_level(logging.INFO):
        docs = load_documents(folder)
    assert "The ferry leaves at nine." in next(d for d in docs if d.file == "minutes.pdf").text
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "qa.ingest.documents", [r.getMessage() for r in warnings]
    assert "minutes.pdf" in warnings[0].getMessage() and "startxref" in warnings[0].getMessage()


def test_another_threads_library_warnings_are_not_held_back(caplog):
    """While one thread gathers, what pypdf logs in another thread still reaches the log."""
    started, release = threading.Event(), threading.Event()

    def gather():
        with gathered() as notes:
            started.set()
            logging.getLogger("pypdf._reader").warning("held back for the gathering thread")
            release.wait(5)
        assert notes == ["held back for the gathering thread"]

    worker = threading.Thread(target=gather)
    with caplog.at_level(logging.WARNING):
        worker.start()
        started.wait(5)
        logging.getLogger("pypdf._reader").warning("from another thread")
        release.set()
        worker.join(5)
    said = [r.getMessage() for r in caplog.records]
    assert "from another thread" in said and "held back for the gathering thread" not in said
    assert logging.getLogger("pypdf").propagate  # as it was once no thread gathers
