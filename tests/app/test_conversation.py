"""The chat's conversation without a browser: plain-text export, the copy text inside a reply, source cards,
the placeholder, what the browser keeps, feedback confirmations, and ``/ask`` with a history."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from qa.app import conversation
from qa.app.export import answer_markdown, conversation_markdown, refusal_markdown
from qa.app.feedback import FeedbackLog, confirmation
from qa.app.render import (distinct_paragraphs, found_by, question_placeholder, render_answer, render_placeholder,
                           render_sources)
from qa.types import Answer, Citation, Document, Hit, Passage, Span

TEXT = ("Budget memo\n\n"
        "The clinic opens in May. The <b>new</b> wing opens in May too.\n\n"
        "Staff training starts in May as well.\n")
DOC = Document("memo", "Budget memo", "memo.txt", TEXT)


def _cite(phrase: str) -> Citation:
    start = TEXT.index(phrase)
    return Citation("memo", DOC.title, start, start + len(phrase), phrase, DOC.location_at(start))


def _answer(**extra) -> Answer:
    cites = (_cite("The clinic opens in May."), _cite("The <b>new</b> wing opens in May too."),
             _cite("Staff training starts in May as well."))
    at = TEXT.index("May")
    span = Span("May", 0.9, "memo", at, at + 3, "memo:0-10")
    return Answer(question="When does the clinic open?", text="May", score=0.9, abstained=False,
                  evidence=cites[0].quote, citations=cites, alternatives=(span,), **extra)


class _Plain(HTMLParser):
    """Collects the title of the reply's .qa-plain element (as the browser decodes it)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "qa-plain" in (attrs.get("class") or ""):
            self.found.append(attrs.get("title", ""))


def test_one_citation_per_paragraph():
    kept = distinct_paragraphs(_answer().citations, {"memo": DOC})
    # The first two sentences share paragraph 2: only the first is kept; paragraph 3's stays.
    assert [c.quote for c in kept] == ["The clinic opens in May.", "Staff training starts in May as well."]
    markup = render_answer(_answer(), 0.5, {"memo": DOC})
    assert markup.count('class="qa-cite"') == 2 and "[3]" not in markup


def test_the_export_is_plain_text_with_each_quote_and_its_citation():
    text = answer_markdown(_answer(searched="When does the clinic open? Budget"), {"memo": DOC}, 0.5)
    assert text.splitlines()[0] == "**Q:** When does the clinic open?"
    assert "Searched for: When does the clinic open? Budget" in text
    assert "**A:** May (High confidence, 90% likely right)" in text
    # Quotes are the document's own characters, "<b>" included: plain text is never escaped.
    assert "> The clinic opens in May.\n— [1] Budget memo, paragraph 2" in text
    assert "> Staff training starts in May as well.\n— [2] Budget memo, paragraph 3" in text
    assert "&lt;" not in text and "[3]" not in text
    whole = conversation_markdown([text, refusal_markdown("?", "The question is empty.")], "Ask", "2026-12-01 10:00")
    assert whole.split("\n\n---\n\n") == ["# Ask: conversation\n\nExported 2026-12-01 10:00 · 2 questions", text,
                                          "**Q:** ?\n\n**A:** The question is empty.\n"]


def test_a_refusal_exports_the_closest_passages():
    p = Passage("memo:0-40", "memo", 0, 40, TEXT[:40])
    refused = Answer(question="Who pays?", text=None, score=0.1, abstained=True, evidence="", hits=(Hit(p, 0.1, 1),))
    text = answer_markdown(refused, {"memo": DOC}, 0.5)
    assert "**A:** The documents don't say." in text and '1. Budget memo, paragraph 1: "Budget memo The clinic' in text


def test_the_copy_text_rides_in_the_reply_and_decodes_to_the_export():
    plain = answer_markdown(_answer(), {"memo": DOC}, 0.5)
    parser = _Plain()
    parser.feed(render_answer(_answer(), 0.5, {"memo": DOC}, plain=plain))
    assert parser.found == [plain]  # newlines and "<b>" survive the attribute


def test_source_cards_show_rank_and_what_found_them_not_scores():
    p = Passage("memo:0-40", "memo", 0, 40, TEXT[:40])
    assert [found_by(Hit(p, 0.03, 1, d, k)) for d, k in ((1, 2), (1, None), (None, 3), (50, 4), (2, 60), (40, 50))] \
        == ["both", "dense", "keyword", "keyword", "dense", "both"]
    cards = render_sources([Hit(p, 0.0327, 1, 50, 1)], {"memo": DOC})
    assert "0.033" not in cards and "score" not in cards and "keyword match" in cards
    assert 'class="qa-rank" title="Rank 1 of the passages read">1<' in cards


def test_a_source_card_says_where_its_answer_is_and_shows_paragraph_breaks():
    p = Passage("memo:0-end", "memo", 0, len(TEXT), TEXT)  # paragraphs 1 to 3; the answer is in paragraph 3
    at = TEXT.index("training")
    cards = render_sources([Hit(p, 0.5, 1, 1, 1)], {"memo": DOC}, [("memo", at, at + len("training"))])
    assert DOC.location_at(at) == "paragraph 3" and DOC.location_at(0) == "paragraph 1"
    assert '<div class="qa-source-meta">paragraph 3 ·' in cards  # the answer's paragraph, not the passage's first
    # Each paragraph break is shown (not run into one line: "Budget memo The clinic ..."), the text around kept.
    assert cards.count('class="qa-para"') == TEXT.strip().count("\n\n") == 2
    assert "Budget memo The clinic" not in cards and "Budget memo" in cards and "The clinic opens" in cards
    plain = render_sources([Hit(p, 0.5, 1, 1, 1)], {"memo": DOC})  # no answer in it: where the passage starts
    assert '<div class="qa-source-meta">paragraph 1 ·' in plain


def test_the_placeholder_names_documents_with_their_own_titles_first():
    docs = {d.id: d for d in (Document("003_20985", "003 20985", "003_20985.txt", "x", file="003_20985.txt"),
                              Document("b", "Budget memo", "b.txt", "x", file="b.txt"),
                              Document("a", "Annual report", "a.txt", "x", file="a.txt"))}
    empty = render_placeholder(docs)
    assert empty.index("Annual report") < empty.index("Budget memo") < empty.index("003 20985")
    assert question_placeholder([], docs) == "Ask about Annual report or 2 other documents"


def test_the_placeholder_names_the_served_documents():
    docs = {f"d{i}": Document(f"d{i}", f"Report {i}", "", "x") for i in range(7)}
    empty = render_placeholder(docs)
    assert "7 documents" in empty and "Report 0" in empty and "Report 4" in empty and "Report 5" not in empty
    assert "and 2 more" in empty and "primary care" not in empty
    assert question_placeholder([], docs) == "Ask about Report 0 or 6 other documents"
    assert question_placeholder(["When is it?"], docs) == "e.g. When is it?"


def test_the_browser_keeps_the_chat_and_its_turns():
    chat = [{"role": "user", "content": [{"type": "text", "text": "Q1"}]}, {"role": "assistant", "content": "<p>A1</p>"},
            {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "<p>A2</p>"}]
    turns = {1: {"question": "Q1", "citations": []}, 3: {"question": "Q2", "error": "refused"}}
    restored_chat, restored_turns = conversation.restored(conversation.saved(chat, turns))
    assert [m["content"] for m in restored_chat] == ["Q1", "<p>A1</p>", "Q2", "<p>A2</p>"]
    assert restored_turns == turns
    assert conversation.history_of(restored_turns) == [{"question": "Q1", "citations": []}]  # refusals left out
    for garbled in (None, "x", {"format": 99}, {"format": 1, "chat": [{"role": "system", "content": "x"}], "turns": []}):
        assert conversation.restored(garbled) == ([], {})


def test_the_browser_keeps_the_sources_panel_of_the_last_answer():
    chat = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<p>A1</p>"}]
    panel = render_sources(_answer(hits=(Hit(Passage("memo:0-40", "memo", 0, 40, TEXT[:40]), 0.5, 1),)).hits,
                           {"memo": DOC})
    value = conversation.saved(chat, {1: {"question": "Q1"}}, sources=panel)
    assert conversation.sources_of(value) == panel
    assert conversation.sources_of(conversation.saved(chat, {1: {"question": "Q1"}})) == ""  # none shown: none kept
    for garbled in (None, "x", {"format": 99, "sources": panel}, {**value, "sources": 7}):
        assert conversation.sources_of(garbled) == ""


def test_only_the_last_messages_are_kept_with_their_turns(monkeypatch):
    monkeypatch.setattr(conversation, "MAX_MESSAGES", 2)
    chat = [{"role": r, "content": c} for r, c in (("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"))]
    value = conversation.saved(chat, {1: {"question": "Q1"}, 3: {"question": "Q2"}})
    assert value["chat"] == chat[2:] and value["turns"] == [[1, {"question": "Q2"}]]


def test_a_feedback_confirmation_names_the_answer_and_the_file(tmp_path):
    row = FeedbackLog.record({"question": "Q?", "answer": "<i>May</i>", "abstained": False, "citations": []}, "down")
    note = confirmation(row, tmp_path / "fb.jsonl")
    assert "thumbs-down" in note and "&lt;i&gt;May&lt;/i&gt;" in note and str(tmp_path / "fb.jsonl") in note
    corrected = FeedbackLog.record({"question": "Q?", "answer": "May"}, "down", correction="June")
    assert "“June”" in confirmation(corrected, "fb.jsonl") and "below" not in confirmation(corrected, "fb.jsonl")


class RecordingQA:
    """Records the history each question came with; answers with the number of earlier turns."""

    threshold = 0.5
    top_k = 5
    documents: dict = {}

    def __init__(self):
        self.histories = []

    def ask(self, question, top_k=5, mode="hybrid", threshold=None, history=None):
        self.histories.append(history)
        return Answer(question=question, text=str(len(history or [])), score=0.9, abstained=False, evidence="")

    def to_json(self, answer):
        return {"question": answer.question, "answer": answer.text}


@pytest.fixture(scope="module")
def recorded(serve_app):
    from gradio_client import Client

    qa = RecordingQA()
    url, _ = serve_app(qa, cache_size=0)
    return qa, Client(url, verbose=False, download_files=False, analytics_enabled=False), url


def test_ask_takes_the_conversation_and_still_the_question_alone(recorded):
    from benchmarks.loadtest import HttpAsker

    qa, client, url = recorded
    assert client.predict("Who chairs it?", ["Which trust?", {"question": "Where?", "citations": []}],
                          api_name="/ask")["answer"] == "2"
    assert qa.histories[-1] == ["Which trust?", {"question": "Where?", "citations": []}]
    assert client.predict("Which trust?", api_name="/ask")["answer"] == "0"
    assert HttpAsker(url).ask("Which trust?")["answer"] == "0"  # plain HTTP, one value: still the question alone
    assert qa.histories[-1] is None
