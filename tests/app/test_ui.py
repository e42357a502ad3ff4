"""The chat app: the ``/ask`` API over real HTTP, rendering that keeps documents inert, feedback rows.

The rendering and command-line tests need no model (feedback: test_feedback.py; cache: test_cache.py) and run in
milliseconds; the tests that use the server (conftest.py) with the real models are marked ``integration``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from qa.app import render, ui
from qa.cli import serve
from qa.types import Answer, Citation, Document, Hit, Passage, Span

SCRIPT = "<script>alert(1)</script>"

# (question, a string the answer must contain); the same questions the pipeline tests use.
CORPUS_QUESTIONS = [
    ("When do primary care trusts go live?", "April 2000"),
    ("Who is the chief executive of NHS North West?", "Mike Farrar"),
    ("Which prime minister appointed the new ministerial team for health?", "Gordon Brown"),
]
OFF_CORPUS = "What is the boiling point of liquid nitrogen?"


def _doc(text: str, doc_id: str = "memo", title: str = "Budget memo") -> Document:
    return Document(id=doc_id, title=title, path=f"{doc_id}.txt", text=text)


# ---------------------------------------------------------------- rendering, no models


def test_highlight_escapes_text_and_nests_marks():
    text = "a <b>bold</b> & c"
    out = render.highlight(text, [(2, 13, "<mark>", "</mark>"), (5, 9, "<i>", "</i>")])
    assert out == "a <mark>&lt;b&gt;<i>bold</i>&lt;/b&gt;</mark> &amp; c"
    # A mark running past its enclosing one is clipped; out-of-range marks are clamped, empty ones dropped.
    assert render.highlight("abcdef", [(1, 3, "[", "]"), (2, 5, "(", ")"), (9, 12, "{", "}")]) == "a[b(c)]def"
    assert render.highlight("", [(0, 3, "[", "]")]) == ""


def test_a_document_with_a_script_tag_renders_as_text():
    text = f"Budget memo\n\nThe committee met in March 2004. {SCRIPT} The budget was agreed.\n"
    doc = _doc(text, title=f"Memo {SCRIPT}")
    s = text.index("The committee")
    e = text.index("agreed.") + len("agreed.")
    a = text.index("March 2004")
    rendered = [
        render.render_document(doc),
        render.render_document(doc, (s, e), (a, a + 10)),
        render.render_sources([Hit(Passage("memo:0", "memo", 0, len(text), text), 0.5, 1)], {"memo": doc},
                          [("memo", a, a + 10)]),
    ]
    for html in rendered:
        assert "<script" not in html.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="qa-focus"' in rendered[1] and '<mark class="qa-hit">March 2004</mark>' in rendered[1]


def _answer(doc: Document, answer_text: str, sentence: str, score: float = 0.9) -> Answer:
    s = doc.text.index(sentence)
    a = doc.text.index(answer_text)
    citation = Citation(doc.id, doc.title, s, s + len(sentence), sentence, "paragraph 2")
    hit = Hit(Passage(f"{doc.id}:0", doc.id, 0, len(doc.text), doc.text), 0.03, 1)
    span = Span(answer_text, score, doc.id, a, a + len(answer_text), hit.passage.id, ((doc.id, a, a + len(answer_text)),))
    return Answer(question="q?", text=answer_text, score=score, abstained=False, evidence=sentence,
                  citations=(citation,), hits=(hit,), alternatives=(span,))


def test_an_answer_shows_bold_answer_marked_evidence_citation_and_confidence():
    doc = _doc("Trusts <2000>\n\nPrimary care trusts go live in April 2000 <b>now</b>.\n", title="PCTs & <you>")
    sentence = "Primary care trusts go live in April 2000 <b>now</b>."
    out = render.render_answer(_answer(doc, "April 2000", sentence), 0.3, {doc.id: doc})
    assert "<strong>April 2000</strong>" in out
    assert "go live in <mark>April 2000</mark> &lt;b&gt;now&lt;/b&gt;." in out
    assert "[1]</span> PCTs &amp; &lt;you&gt;" in out and "paragraph 2" in out
    assert "High confidence · 90% likely right" in out
    href = out.split('href="')[1].split('"')[0]
    s, a = doc.text.index(sentence), doc.text.index("April 2000")
    assert render.parse_ref(href) == (doc.id, s, s + len(sentence), (a, a + 10))
    assert "\n" not in out, "a newline could end the HTML block in the chat's Markdown"


def test_an_abstention_says_so_and_lists_the_closest_passages():
    doc = _doc(f"Memo\n\nNothing about nitrogen here {SCRIPT}.\n")
    hit = Hit(Passage("memo:0", "memo", 0, len(doc.text), doc.text), 0.03, 1)
    answer = Answer(question="q?", text=None, score=0.05, abstained=True, evidence="", hits=(hit,),
                    alternatives=(Span("Memo", 0.05, "memo", 0, 4, "memo:0"),))
    out = render.render_answer(answer, 0.3, {"memo": doc})
    assert render.ABSTAIN_TEXT in out and "5% likely right, below the answer threshold of 30%" in out
    assert "Budget memo" in out and "<script" not in out


def test_confidence_bands():
    # margin = (score - threshold) / (1 - threshold)
    assert render.confidence_label(0.1, 0.3) == "Low"  # below the threshold
    assert render.confidence_label(0.35, 0.3) == "Low"  # margin 0.05 / 0.7 = 0.07
    assert render.confidence_label(0.38, 0.3) == "Medium"  # margin 0.08 / 0.7 = 0.11
    assert render.confidence_label(0.5, 0.3) == "Medium"  # margin 0.2 / 0.7 = 0.29
    assert render.confidence_label(0.59, 0.3) == "High"  # margin 0.29 / 0.7 = 0.41


def test_open_links_round_trip_and_reject_anything_else():
    ref = render.open_ref("reports/2004 budget:final", 10, 20, (12, 15))
    assert ref.startswith("#qa-open:reports%2F2004%20budget%3Afinal:")
    assert render.parse_ref(ref) == ("reports/2004 budget:final", 10, 20, (12, 15))
    assert render.parse_ref(render.open_ref("a", 1, 2)) == ("a", 1, 2, None)
    for bad in ("", "#qa-open:a:1", "#qa-open:a:x:2", "#other:a:1:2", "../../etc/passwd", None):
        assert render.parse_ref(bad) is None


def test_default_index_folder():
    assert serve.default_index("seeds") == Path("embeddings")
    assert serve.default_index("/data/board papers") == Path(".qa-index") / "board papers"


# ---------------------------------------------------------------- command line, no models


def test_serve_help_explains_the_options(capsys):
    parser = argparse.ArgumentParser(prog="qa")
    serve.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.share, args.feedback) == ("127.0.0.1", 7860, False, "feedback/feedback.jsonl")
    assert args.func is serve.run
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--docs", "--index", "--host", "--port", "--share", "--feedback", "<docs folder name>"):
        assert option in text


# ---------------------------------------------------------------- the real app over HTTP


@pytest.fixture(scope="module")
def qa(bundled_qa):
    return bundled_qa


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False, download_files=False, analytics_enabled=False)


@pytest.mark.integration
def test_the_api_lists_only_ask(client):
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/ask"]


@pytest.mark.integration
@pytest.mark.parametrize("question,expected", CORPUS_QUESTIONS)
def test_ask_answers_with_verbatim_citations(client, qa, question, expected):
    result = client.predict(question, api_name="/ask")
    assert result == qa.to_json(qa.ask(question)), "the API returns exactly the `qa ask --json` object"
    assert result["abstained"] is False and expected.lower() in result["answer"].lower()
    assert result["citations"] and result["passages"]
    for c in result["citations"]:
        assert qa.documents[c["doc_id"]].text[c["start"] : c["end"]] == c["quote"]
        assert result["answer"] in c["quote"]
    assert result["evidence"] == result["citations"][0]["quote"]


@pytest.mark.integration
def test_ask_refuses_what_the_documents_do_not_say(client):
    result = client.predict(OFF_CORPUS, api_name="/ask")
    assert result["abstained"] is True and result["answer"] is None
    assert result["citations"] == [] and len(result["passages"]) == 5


@pytest.mark.integration
def test_ask_rejects_an_empty_question(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict("   ", api_name="/ask")


@pytest.mark.integration
def test_a_served_folder_with_a_script_tag_stays_inert(tmp_path):
    """Build the index of a new folder on start (as ``qa serve --docs`` does), then render what it returns."""
    docs = tmp_path / "memos"
    docs.mkdir()
    (docs / "budget.txt").write_text(
        f"Budget memo\n\nThe finance committee met on 12 March 2004 to agree the budget. {SCRIPT}\n\n"
        "The budget for community nursing was set at four million pounds.\n", encoding="utf-8")
    (docs / "other.txt").write_text("Staffing note\n\nThe trust employs 40 district nurses.\n", encoding="utf-8")
    qa = serve.load_qa(docs, tmp_path / "index")  # no index yet: built here
    assert (tmp_path / "index" / "manifest.json").is_file()
    answer = qa.ask("When did the finance committee meet?")
    doc = qa.documents["budget"]
    rendered = [render.render_answer(answer, qa.threshold, qa.documents),
                render.render_sources(answer.hits, qa.documents, render.answer_places(answer)),
                render.render_document(doc, (0, len(doc.text)))]
    for html in rendered:
        assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered[2]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ValueError, match="holds the documents of"):
        serve.load_qa(elsewhere, tmp_path / "index")  # an index of another folder is never served by mistake


def test_the_page_css_and_scripts_ship_as_files():
    """Read when the app is built; the package data must include qa/app/static/*."""
    assert ".qa-reply" in ui.static_text("app.css")
    assert "qa-open:" in ui.static_text("open.js") and "trigger('open'" in ui.static_text("open.js")
    assert "#qa-focus" in ui.static_text("viewer.js")


def test_confidence_bands_come_from_the_readers_measurements():
    """With measured bands the label is the first band the score reaches, and its meaning (one click
    away, in a details element) quotes the held-out precision."""
    bands = [{"name": "High", "min": 0.8, "precision": 0.9, "held_out_precision": 0.91},
             {"name": "Medium", "min": 0.4, "precision": 0.7}]
    assert render.confidence_label(0.85, 0.4, bands) == "High"
    assert render.confidence_label(0.5, 0.4, bands) == "Medium"
    assert render.confidence_label(0.3, 0.4, bands) == "Low"  # below the threshold
    assert "91%" in render.band_meaning("High", bands) and "never saw" in render.band_meaning("High", bands)
    assert "70%" in render.band_meaning("Medium", bands) and "calibrated on" in render.band_meaning("Medium", bands)
    doc = Document("memo", "Memo", "memo.txt", "Trusts go live in April 2000.")
    out = render.render_answer(_answer(doc, "April 2000", "Trusts go live in April 2000."), 0.4, {"memo": doc}, bands)
    assert '<details class="qa-conf qa-conf-' in out and "<summary>" in out
