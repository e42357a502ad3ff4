"""Hostile requests against a running app (real HTTP on 127.0.0.1): oversized bodies are refused before
they are read or stored, long questions and ids are refused without being echoed, ``/delete``'s confirm
is read strictly, and an uploaded file leaves nothing in Gradio's upload folder once handled.

The app serves a tiny folder with a fake keyword encoder and a reader that answers with a passage's
first word, under small limits so that going over them costs little.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.corpus import FERRY, TINY_CORPUS, write_corpus
from helpers.fakes import FakeEncoder, FirstWordReader

from benchmarks.hostile import call_api, multipart_file, multipart_length, post_streamed
from qa.answering.pipeline import QA
from qa.app.documents import DocumentLibrary
from qa.app.limits import MAX_QUESTION_CHARS, Limits
from qa.retrieval.retriever import Retriever
from qa.stores.local.build import build_index

LIMITS = Limits(upload_bytes=2**20, request_bytes=64 * 2**10, question_chars=300, id_chars=100, sessions=3)
FORM = "multipart/form-data; boundary=qa-hostile-boundary"


def stored(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_app, small_chunks_module):
    root = tmp_path_factory.mktemp("served")
    docs = write_corpus(root / "docs", TINY_CORPUS)
    uploads = root / "gradio-uploads"
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # read when the app is built and launched
    encoder = FakeEncoder()
    build_index(docs, root / "index", encoder=encoder, chunk_config=small_chunks_module)
    qa = QA(Retriever.load(root / "index", encoder=encoder), FirstWordReader(root), threshold=0.0)
    library = DocumentLibrary(qa, docs, root / "index", limits=LIMITS)
    try:
        url, _ = serve_app(qa, root / "feedback.jsonl", library=library)
        yield url, docs, uploads, library, serve_app.apps[-1]
    finally:
        if saved is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved


@pytest.fixture(scope="module")
def small_chunks_module():
    from qa.ingest.chunking import ChunkConfig

    return ChunkConfig(chunk_size=100, chunk_overlap=0)


def test_the_question_limit_is_what_the_pipeline_reads():
    from qa.answering.question import check_question

    assert Limits().question_chars == MAX_QUESTION_CHARS == len(check_question("q" * (MAX_QUESTION_CHARS + 10)))


# Bodies over their limit: refused before they are read, nothing stored ---------------------------------

def test_a_200_mb_upload_is_refused_from_its_length_and_nothing_is_stored(served):
    """The probe's 200 MB POST to /gradio_api/upload, streamed (never a 200 MB buffer): the server answers
    413 before reading the body, and the client is stopped after a few megabytes at most."""
    url, _, uploads, _, _ = served
    before = stored(uploads)
    size = 200 * 2**20
    status, body, sent = post_streamed(url, "/gradio_api/upload", FORM, multipart_file("big.txt", size),
                                       declared_length=multipart_length("big.txt", size))
    assert status == 413 and "over the" in body and "\n" not in body.strip()
    assert sent < 20 * 2**20, f"the server let {sent:,} bytes in before refusing"
    assert stored(uploads) == before


def test_an_upload_streamed_without_a_length_is_cut_off_at_its_limit(served):
    url, _, uploads, _, _ = served
    before = stored(uploads)
    status, body, sent = post_streamed(url, "/gradio_api/upload", FORM, multipart_file("big.txt", 40 * 2**20))
    assert status == 413
    assert sent < LIMITS.upload_request_bytes + 8 * 2**20
    assert stored(uploads) == before, "Gradio's partial file is deleted"


def test_one_file_over_its_limit_is_refused_by_gradio_and_not_kept(served):
    """A request within the upload request's limit, whose one file is over the per-file limit."""
    url, _, uploads, _, _ = served
    before = stored(uploads)
    size = LIMITS.upload_bytes + 2**16
    status, body, _ = post_streamed(url, "/gradio_api/upload", FORM, multipart_file("big.txt", size),
                                    declared_length=multipart_length("big.txt", size))
    assert status == 413 and "maximum allowed size" in body
    assert stored(uploads) == before


@pytest.mark.parametrize("declared", [True, False])
def test_a_question_body_over_the_request_limit_is_refused_before_it_is_read(served, declared):
    url = served[0]
    filler = b'{"data": ["' + b"x" * (LIMITS.request_bytes + 1000) + b'"]}'
    chunks = (filler[i:i + 4096] for i in range(0, len(filler), 4096))
    status, body, _ = post_streamed(url, "/gradio_api/call/ask", "application/json", chunks,
                                    declared_length=len(filler) if declared else None)
    assert status == 413 and "over the" in body  # (a body this small is in the socket's buffers before the answer)


def test_the_app_still_answers_after_the_refusals(served):
    event, data = call_api(served[0], "ask", ["Which rocket carried astronauts to the Moon?"])
    assert event == "complete" and data[0]["citations"][0]["doc_id"] == "space/rockets"


# Questions and ids: refused by their length, without being echoed ------------------------------------

def test_the_server_keeps_the_state_of_its_latest_sessions_only(served):
    url, app = served[0], served[4]
    for n in range(LIMITS.sessions + 4):  # each API call is a session of its own
        event, _ = call_api(url, "ask", [f"Which rocket carried astronauts to the Moon, take {n}?"])
        assert event == "complete"
    assert 0 < len(app.state_holder.session_data) <= LIMITS.sessions


def test_a_long_question_is_refused_in_one_line_without_echoing_it(served):
    question = "When " + "q" * LIMITS.question_chars
    event, message = call_api(served[0], "ask", [question])
    assert event == "error" and "over the 300" in str(message) and "q" * 100 not in str(message)


def test_a_long_document_id_is_refused_without_being_echoed(served):
    event, message = call_api(served[0], "delete", ["d" * 5_000, False])
    assert event == "error" and "at most 100 characters" in str(message) and "d" * 200 not in str(message)
    event, message = call_api(served[0], "ask", ["When?", None, ["d" * 5_000]])
    assert event == "error" and "at most 100 characters" in str(message) and "d" * 200 not in str(message)


def test_an_unknown_id_is_quoted_short(served):
    event, message = call_api(served[0], "delete", ["z" * 90, False])
    assert event == "error" and "No indexed document has the id" in str(message) and "z" * 90 not in str(message)


# /delete's confirm is read strictly --------------------------------------------------------------------

@pytest.mark.parametrize("confirm, says", [
    ("false", "Pass confirm=True"), ("False", "Pass confirm=True"), (None, "Pass confirm=True"),
    (False, "Pass confirm=True"), ("0", "confirm is true or false"), ("no", "confirm is true or false"),
    ("", "confirm is true or false"), ("yes", "confirm is true or false"), (1, "confirm is true or false"),
])
def test_only_a_true_confirm_moves_the_users_own_file(served, confirm, says):
    """The probe: confirm="false" moved the user's file to the trash (bool("false") is True)."""
    url, docs, _, _, _ = served
    before = (docs / "weather.txt").read_bytes()
    event, message = call_api(url, "delete", ["weather", confirm])
    assert event == "error" and says in str(message)
    assert (docs / "weather.txt").read_bytes() == before and not (docs / ".qa-trash").exists()


# Uploaded files are deleted once handled ------------------------------------------------------------------

def test_an_uploaded_file_is_deleted_from_gradios_folder_once_handled(served, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, docs, uploads, _, _ = served
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    ferry = tmp_path / "ferry.txt"
    ferry.write_text(FERRY, encoding="utf-8")
    assert "ferry" in {r["id"] for r in client.predict(handle_file(str(ferry)), api_name="/upload")}
    refused = tmp_path / "notes.exe"
    refused.write_bytes(b"MZ binary")
    with pytest.raises(AppError, match="not a type the app indexes"):
        client.predict(handle_file(str(refused)), api_name="/upload")
    left = [p.name for p in stored(uploads)]
    assert "ferry.txt" not in left and "notes.exe" not in left, left
    assert (docs / "ferry.txt").read_text(encoding="utf-8") == FERRY
    client.predict("ferry", True, api_name="/delete")
