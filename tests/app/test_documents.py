"""The documents panel's back end: upload checks, incremental indexing of one new file, delete, the
per-question filter, and the chat answering from the old index while the new one is built.

A fake keyword encoder and a fake reader (it answers with the first word of the best passage) keep
these in milliseconds; the browser tests drive the same code with the real models.
"""

from __future__ import annotations

import re
import threading

import pytest
from helpers.corpus import FERRY, minimal_pdf, snapshot
from helpers.fakes import FakeEncoder, FirstWordReader, GatedEncoder

from qa.answering.pipeline import QA
from qa.app.documents import REGISTRY, TRASH, DocumentLibrary, LiveQA, NeedsConfirmation
from qa.app.uploads import InvalidUpload, check_upload
from qa.errors import InvalidInput, UserError
from qa.retrieval.retriever import Retriever
from qa.stores.local.build import build_index


@pytest.fixture
def library(tiny_corpus, tmp_path, small_chunks):
    encoder = FakeEncoder()
    index = tmp_path / "index"
    build_index(tiny_corpus, index, encoder=encoder, chunk_config=small_chunks)
    qa = QA(Retriever.load(index, encoder=encoder), FirstWordReader(tmp_path), threshold=0.0)
    encoder.reset()
    return DocumentLibrary(qa, tiny_corpus, index, max_upload_bytes=10_000)


# Upload checks: a clear message, and nothing changed on disk -------------------------------------------

@pytest.mark.parametrize("name, data, says", [
    ("report.pdf", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "is not a PDF"),
    ("report.pdf", b"MZ\x90\x00" + b"\x00" * 500, "is not a PDF"),
    ("notes.txt", b"", "is empty (0 bytes)"),
    ("notes.txt", b"a" * 10_001, "over the 10,000 bytes limit"),
    ("../x.txt", b"Escaping text.", "is a path, not a file name"),
    ("sub/x.txt", b"Nested text.", "is a path, not a file name"),
    ("..\\x.txt", b"Escaping text.", "is a path, not a file name"),
    (".hidden.txt", b"Hidden text.", "hidden file name"),
    ("notes.exe", b"Some text.", "not a type the app indexes"),
    ("notes.txt", b"GIF89a\x00\x00binary", "is not text"),
    ("minutes.docx", b"PK\x03\x04 not a zip at all", "is not a Word document"),
    ("scan.pdf", minimal_pdf([""]), "can't be indexed: empty document"),
])
def test_a_bad_upload_is_refused_with_a_clear_message_and_changes_nothing(library, tiny_corpus, name, data, says):
    before = snapshot(tiny_corpus.parent)
    generation = library.live.generation
    with pytest.raises(InvalidUpload, match=re.escape(says)) as refused:
        library.upload(name, data)
    message = str(refused.value)
    assert "\n" not in message and (name in message or repr(name) in message)
    assert snapshot(tiny_corpus.parent) == before  # the folder, the index and the tmp folder around them
    assert library.live.generation == generation


def test_check_upload_loads_the_document_as_indexing_will():
    doc = check_upload("ferry.txt", FERRY.encode())
    assert (doc.title, doc.text) == ("Ferry timetable", FERRY)


# Incremental indexing of one new file -----------------------------------------------------------------

def test_an_upload_embeds_only_the_new_file_and_is_answered_from_at_once(library, tiny_corpus):
    encoder = library.live.retriever.encoder
    before = {p.id for p in library.live.retriever.index.passages}
    change = library.upload("ferry.txt", FERRY.encode())
    assert (tiny_corpus / "ferry.txt").read_text(encoding="utf-8") == FERRY
    new = [p for p in library.live.retriever.index.passages if p.id not in before]
    assert {p.doc_id for p in new} == {"ferry"}
    # Only the new file's passages went through the encoder (the old ones' vectors were reused).
    assert sorted(encoder.passages_encoded) == sorted(p.text for p in new) and change.embedded == len(new)
    assert change.doc_id == "ferry" and '"Ferry timetable" (ferry.txt)' in change.message
    answer = library.live.ask("When does the ferry to Mull leave Oban?")
    assert answer.citations[0].doc_id == "ferry"
    row = next(r for r in library.rows() if r["id"] == "ferry")
    assert row["uploaded"] and row["passages"] == len(new) and row["size"] == "2 paragraphs" and row["indexed_at"]


def test_an_upload_never_overwrites_a_file_and_says_where_it_went(library, tiny_corpus):
    original = (tiny_corpus / "weather.txt").read_bytes()
    change = library.upload("weather.txt", b"Weather diary\n\nIt rained on Sunday.\n")
    assert (tiny_corpus / "weather.txt").read_bytes() == original
    assert (tiny_corpus / "weather (2).txt").read_text() == "Weather diary\n\nIt rained on Sunday.\n"
    assert "saved as weather (2).txt" in change.message and change.doc_id == "weather (2)"
    # A name whose stem is another file's id would change that file's id: it is renamed too.
    change = library.upload("weather.md", b"# Weather, again\n\nHail in May.\n")
    assert change.file == "weather (3).md" and "weather" in library.live.documents


def test_the_same_content_twice_is_not_indexed_twice(library, tiny_corpus):
    library.upload("ferry.txt", FERRY.encode())
    before = snapshot(tiny_corpus)
    change = library.upload("copy of ferry.txt", FERRY.encode())
    assert "already indexed" in change.message and change.doc_id == "ferry"
    assert snapshot(tiny_corpus) == before


def test_a_pdf_upload_is_listed_by_pages(library):
    library.upload("ferry.pdf", minimal_pdf(["Ferry timetable for Mull.", "Sailings at nine and noon."]))
    row = next(r for r in library.rows() if r["file"] == "ferry.pdf")
    assert row["size"] == "2 pages" and row["uploaded"]


# Delete ---------------------------------------------------------------------------------------------------

def test_deleting_an_uploaded_document_removes_it_from_the_folder_and_the_index(library, tiny_corpus):
    library.upload("ferry.txt", FERRY.encode())
    change = library.delete("ferry")
    assert not (tiny_corpus / "ferry.txt").exists() and "ferry" not in library.live.documents
    assert all(p.doc_id != "ferry" for p in library.live.retriever.index.passages)
    assert change.message == 'Deleted "Ferry timetable" (ferry.txt).'
    assert library.live.ask("When does the ferry to Mull leave Oban?").citations[0].doc_id != "ferry"


def test_deleting_the_users_file_asks_first_and_then_moves_it_to_the_trash(library, tiny_corpus):
    before = snapshot(tiny_corpus)
    with pytest.raises(NeedsConfirmation, match=r"weather.txt was not uploaded here.*Confirm") as asked:
        library.delete("weather")
    assert isinstance(asked.value, UserError) and snapshot(tiny_corpus) == before
    change = library.delete("weather", confirm=True)
    (trashed,) = (tiny_corpus / TRASH).iterdir()
    assert trashed.read_bytes() == before["weather.txt"]
    # Where it went, in the documents folder's terms: a visitor is never shown the server's own paths.
    assert f"{TRASH}/{trashed.name} in the documents folder" in change.message
    assert str(tiny_corpus) not in change.message
    assert not (tiny_corpus / "weather.txt").exists() and "weather" not in library.live.documents


def test_an_uploaded_file_the_user_has_since_edited_is_the_users(library, tiny_corpus):
    library.upload("ferry.txt", FERRY.encode())
    (tiny_corpus / "ferry.txt").write_text(FERRY + "\nEdited by hand.\n")
    library.rescan()
    with pytest.raises(NeedsConfirmation):
        library.delete("ferry")
    assert (tiny_corpus / "ferry.txt").exists()


def test_unknown_ids_and_the_last_document_are_refused(library, tiny_corpus):
    with pytest.raises(InvalidInput, match="No indexed document has the id 'nope'"):
        library.delete("nope")
    for doc_id in ["animals/cats", "space/rockets", "kitchen/bread"]:
        library.delete(doc_id, confirm=True)
    with pytest.raises(InvalidInput, match="is the only document"):
        library.delete("weather", confirm=True)
    assert (tiny_corpus / "weather.txt").exists()


def test_the_registry_is_hidden_from_indexing(library, tiny_corpus):
    library.upload("ferry.txt", FERRY.encode())
    assert (tiny_corpus / REGISTRY).is_file()
    assert sorted(library.live.documents) == ["animals/cats", "ferry", "kitchen/bread", "space/rockets", "weather"]


# The per-question filter ----------------------------------------------------------------------------------

def test_a_question_limited_to_chosen_documents_is_answered_from_them_only(library):
    question = "Which rocket carried astronauts to the Moon?"
    assert library.live.ask(question).citations[0].doc_id == "space/rockets"
    limited = library.live.ask(question, doc_ids=["kitchen/bread", "weather"])
    assert {h.passage.doc_id for h in limited.hits} <= {"kitchen/bread", "weather"}
    with pytest.raises(InvalidInput, match="Unknown document id"):
        library.live.ask(question, doc_ids=["nope"])


# The chat keeps working while a new index is built ------------------------------------------------------

def test_questions_are_answered_from_the_old_index_until_the_new_one_is_published(tiny_corpus, tmp_path,
                                                                                    small_chunks):
    encoder = GatedEncoder()
    encoder.release.set()
    index = tmp_path / "index"
    build_index(tiny_corpus, index, encoder=encoder, chunk_config=small_chunks)
    library = DocumentLibrary(QA(Retriever.load(index, encoder=encoder), FirstWordReader(tmp_path), 0.0),
                              tiny_corpus, index)
    encoder.entered.clear()
    encoder.release.clear()
    done: list = []
    upload = threading.Thread(target=lambda: done.append(library.upload("ferry.txt", FERRY.encode())))
    upload.start()
    assert encoder.entered.wait(30)
    # Mid-build: the file is in the folder, the old index still answers, and the new document isn't in it.
    assert (tiny_corpus / "ferry.txt").exists()
    answer = library.live.ask("Which rocket carried astronauts to the Moon?")
    assert answer.citations[0].doc_id == "space/rockets" and "ferry" not in library.live.documents
    encoder.release.set()
    upload.join(30)
    assert done and "ferry" in library.live.documents and library.live.generation == 1


def test_live_documents_still_find_a_document_just_removed(library):
    library.upload("ferry.txt", FERRY.encode())
    answer = library.live.ask("When does the ferry to Mull leave Oban?")
    library.delete("ferry")
    assert "ferry" not in list(library.live.documents)
    assert library.live.documents["ferry"].title == "Ferry timetable"  # the answer above can still be shown
    assert library.live.to_json(answer)["citations"][0]["doc_id"] == "ferry"


def test_live_qa_is_the_current_pipeline():
    class Stub:
        threshold, documents = 0.4, {}

    live = LiveQA(Stub())
    assert live.threshold == 0.4 and live.generation == 0
