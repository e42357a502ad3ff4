"""Uploads and clicks that would cost the server too much, or tell a visitor too much: documents over
their text limits, a reading that runs too long or takes too much memory, more changes than may wait,
a huge Markdown file in the viewer, a like event without data, and what the Documents tab shows."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from helpers.corpus import FERRY, snapshot
from helpers.fakes import FakeEncoder, FirstWordReader, GatedEncoder

from qa.answering.pipeline import QA
from qa.app.documents import REGISTRY, Busy, DocumentLibrary, IndexUnavailable
from qa.app.limits import Limits
from qa.app.uploads import InvalidUpload, check_upload
from qa.retrieval.retriever import Retriever
from qa.stores.local.build import build_index

SENTENCES = "The ferry to Mull leaves Oban at nine. It returns at noon on weekdays. "


def _library(tiny_corpus, tmp_path, small_chunks, encoder=None, **limits) -> DocumentLibrary:
    encoder = encoder or FakeEncoder()
    index = tmp_path / "index"
    build_index(tiny_corpus, index, encoder=encoder, chunk_config=small_chunks)
    qa = QA(Retriever.load(index, encoder=encoder), FirstWordReader(tmp_path), threshold=0.0)
    return DocumentLibrary(qa, tiny_corpus, index, limits=Limits(**limits))


# The text an upload may have, and what reading it may take ---------------------------------------------

def test_a_document_over_the_character_limit_is_refused_in_one_line():
    text = SENTENCES * 20
    with pytest.raises(InvalidUpload) as refused:
        check_upload("long.txt", text.encode(), Limits(document_chars=1000))
    said = str(refused.value)
    assert said.startswith(f"long.txt can't be indexed: its text is {len(text):,} characters, over the 1,000")
    assert "\n" not in said


def test_a_document_over_the_passage_limit_is_refused(small_chunks):
    with pytest.raises(InvalidUpload, match="passages, over the 5 a document may have"):
        check_upload("many.txt", (SENTENCES * 20).encode(), Limits(document_passages=5), small_chunks)
    assert check_upload("many.txt", (SENTENCES * 20).encode(), Limits(document_passages=50), small_chunks)


def test_a_reading_that_runs_past_its_time_is_stopped():
    """Splitting a million characters into sentences takes far longer than 50 ms."""
    with pytest.raises(InvalidUpload, match="took longer than"):
        check_upload("slow.txt", (SENTENCES * 14_000).encode(), Limits(read_seconds=0.05))


def test_a_reading_that_needs_more_memory_than_allowed_is_stopped():
    with pytest.raises(InvalidUpload, match="memory"):
        check_upload("big.txt", (SENTENCES * 70_000).encode(), Limits(read_memory_bytes=2**20))


def test_the_reading_process_reads_as_indexing_does():
    doc = check_upload("ferry.txt", FERRY.encode())
    assert (doc.title, doc.text, doc.file) == ("Ferry timetable", FERRY, "ferry.txt")


# One change indexed, a bounded few waiting, the rest refused ------------------------------------------------

def test_changes_beyond_those_that_may_wait_are_refused_at_once(tiny_corpus, tmp_path, small_chunks):
    encoder = GatedEncoder()
    encoder.release.set()
    library = _library(tiny_corpus, tmp_path, small_chunks, encoder=encoder, waiting_changes=1)
    encoder.entered.clear()
    encoder.release.clear()
    said: list[str] = []
    first = threading.Thread(target=library.upload, args=("ferry.txt", FERRY.encode()))
    first.start()
    assert encoder.entered.wait(60)  # the first is being indexed
    waiting = threading.Event()

    def progress(fraction, desc):
        said.append(desc)
        if desc.startswith("Waiting"):
            waiting.set()

    second = threading.Thread(target=library.upload, args=("bus.txt", b"The bus leaves at ten.\n"),
                              kwargs={"progress": progress})
    second.start()
    assert waiting.wait(60), said  # the second waits, and is told so
    before = snapshot(tiny_corpus)
    with pytest.raises(Busy, match="1 more is waiting: try again"):
        library.upload("train.txt", b"The train leaves at noon.\n")
    with pytest.raises(Busy):
        library.delete("weather", confirm=True)
    assert snapshot(tiny_corpus) == before
    encoder.release.set()
    first.join(60)
    second.join(60)
    assert {"ferry", "bus"} <= set(library.live.documents)
    library.upload("train.txt", b"The train leaves at noon.\n")  # once they are done, a change goes through


def test_a_build_lock_held_elsewhere_is_told_without_pid_or_host(tiny_corpus, tmp_path, small_chunks):
    from qa.stores.local import folder

    library = _library(tiny_corpus, tmp_path, small_chunks)
    before = snapshot(tiny_corpus)
    with folder.Writer(library.index_dir):  # another program's build holds the index
        with pytest.raises(IndexUnavailable) as refused:
            library.upload("ferry.txt", FERRY.encode())
    said = str(refused.value)
    assert "try again" in said and "pid" not in said and socket.gethostname() not in said
    assert str(tmp_path) not in said
    after = {name: data for name, data in snapshot(tiny_corpus).items() if name != REGISTRY}
    assert after == before, "the uploaded file is taken out again"


# The viewer: bounded work per click -----------------------------------------------------------------------

def _markdown_doc(text: str):
    from qa.types import Document

    return Document(id="notes", title="Notes", path="notes.md", text=text, file="notes.md", source_hash="abc")


def test_markdown_past_the_format_limit_is_shown_as_plain_text():
    from qa.app.viewer import Viewer

    pathological = "[" * 1_600_000  # markdown-it takes minutes over this
    html = Viewer(format_chars=100_000).render(_markdown_doc(pathological), (10, 20))
    assert "qa-doc-md" not in html and 'id="qa-focus"' in html


def test_a_formatted_markdown_view_is_rendered_once(monkeypatch):
    import qa.app.viewer as viewer

    calls = []
    real = viewer.markdown_html
    monkeypatch.setattr(viewer, "markdown_html", lambda *a: calls.append(a) or real(*a))
    view = viewer.Viewer()
    doc = _markdown_doc("# Notes\n\nThe ferry leaves at nine.\n")
    first = view.render(doc, (9, 35))
    assert view.render(doc, (9, 35)) == first and len(calls) == 1
    view.render(doc, (0, 7))
    assert len(calls) == 2  # another highlight is another rendering


# What the page shows a visitor, and a like event without data ---------------------------------------------

def _built_app(tiny_corpus, tmp_path, small_chunks):
    from qa.app import ui
    from qa.app.feedback import FeedbackLog

    library = _library(tiny_corpus, tmp_path, small_chunks)
    return ui.build_app(library.live, FeedbackLog(tmp_path / "feedback.jsonl"), library=library), library


def test_the_documents_tab_shows_no_server_path(tiny_corpus, tmp_path, small_chunks):
    app, library = _built_app(tiny_corpus, tmp_path, small_chunks)
    tab = [c["props"] for c in app.config["components"]
           if c.get("props", {}).get("elem_id") in ("qa-lib-help", "qa-library", "qa-lib-status")]
    shown = json.dumps(tab)
    assert len(tab) == 3 and str(tmp_path) not in shown and str(tmp_path.resolve()) not in shown
    assert f"<code>{tiny_corpus.name}</code>" in shown  # the folder is named, not located


def test_a_like_event_without_data_is_ignored(tiny_corpus, tmp_path, small_chunks):
    """The probe: a like event sent with null data failed in Gradio's gr.LikeData ('NoneType' object is not
    subscriptable). The handler's arguments are made here as Gradio makes them for an event."""
    import gradio as gr
    from gradio.helpers import special_args

    app, _ = _built_app(tiny_corpus, tmp_path, small_chunks)
    on_like = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "on_like")
    turns = {1: {"question": "When?", "answer": "nine", "abstained": False, "citations": []}}

    def like(data):
        return on_like(*special_args(on_like, [turns], None, gr.EventData(None, data))[0])

    for data in (None, [], "x", {"index": None}, {"index": "1"}, {"index": [None]}):
        assert all(isinstance(out, type(gr.skip())) for out in like(data))
    note, _, rated = like({"index": 1, "value": "nine", "liked": True})
    assert "thumbs-up" in note and rated == {"index": 1, "rating": "up"}
