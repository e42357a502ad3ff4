"""The browser chat app: ask in the chat, read the cited sentence, open the document it came from.

The app is wiring and rendering only: every answer comes from one shared :class:`qa.answering.pipeline.QA`.
It also serves a named API endpoint, ``/ask``, returning the ``qa ask --json`` object.

Example:
    $ qa serve                     # the bundled corpus (seeds/, index in embeddings/)
    $ python app.py --port 8080
    >>> from gradio_client import Client
    >>> Client("http://127.0.0.1:7860/").predict("When do primary care trusts go live?", api_name="/ask")["answer"]
    'April 2000'
"""

import argparse
import html
import json
import logging
import re
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence
from urllib.parse import quote, unquote

try:
    import fcntl  # file locks, so several app processes can share one feedback file
except ImportError:  # Windows: the thread lock still serialises one process's appends
    fcntl = None

# Type names only: gradio and torch load when the app is built, never at import. Annotations on the
# event handlers inside build_app are real objects, so Gradio can see which argument takes gr.LikeData.
if TYPE_CHECKING:
    import gradio as gr

    from qa.answering.pipeline import QA
    from qa.types import Answer, Document, Hit

from qa.app.cache import DEFAULT_MAX_BYTES, DEFAULT_SIZE, AnswerCache

logger = logging.getLogger(__name__)

DEFAULT_DOCS = "seeds"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_FEEDBACK = Path("feedback") / "feedback.jsonl"
DEFAULT_CONCURRENCY = 4  # answers computed at once; more only queue on a small CPU
MODES = ("hybrid", "dense", "bm25")
TITLE = "Ask the documents"
BUNDLED_EXAMPLES = [
    "When do primary care trusts go live?",
    "Who is the chief executive of NHS North West?",
    "Which prime minister appointed the new ministerial team for health?",
    "Where is the Health Services Management Centre?",
    "What are primary care trusts heralded as a UK hybrid of?",
]
SNIPPET_CHARS = 360  # characters of a passage shown in the sources panel
ABSTAIN_TEXT = "The documents don't say."

Mark = tuple[int, int, str, str]  # (start, end, opening tag, closing tag)


# ---------------------------------------------------------------- rendering (pure functions)


def highlight(text: str, marks: Sequence[Mark] = ()) -> str:
    """``text`` HTML-escaped, with each mark's ``[start, end)`` wrapped in its tags.

    Marks nest or are disjoint; a mark running past the end of the one it starts in is clipped to it.

    Example:
        >>> highlight("a <b> c", [(2, 5, "<mark>", "</mark>")])
        'a <mark>&lt;b&gt;</mark> c'
    """
    n = len(text)
    clamped = ((max(0, min(s, n)), max(0, min(e, n)), o, c) for s, e, o, c in marks)
    ordered = sorted(clamped, key=lambda m: (m[0], -m[1]))  # outer marks before the marks they hold
    out: list[str] = []
    pos = 0
    stack: list[tuple[int, str]] = []  # (end, closing tag) of the open marks

    def close_until(limit: int) -> None:
        nonlocal pos
        while stack and stack[-1][0] <= limit:
            end, closing = stack.pop()
            out.append(html.escape(text[pos:end]) + closing)
            pos = end

    for start, end, opening, closing in ordered:
        if end <= start:
            continue
        close_until(start)
        if stack:
            end = min(end, stack[-1][0])
        out.append(html.escape(text[pos:start]) + opening)
        pos = start
        stack.append((end, closing))
    close_until(n)
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def open_ref(doc_id: str, start: int, end: int, answer: tuple[int, int] | None = None) -> str:
    """The ``href`` of a link that opens the viewer: ``#qa-open:<doc id, URL-quoted>:start:end[:a_start:a_end]``.

    A fragment (not data attributes, which the chat's HTML sanitiser strips); ``VIEWER_JS`` reads it.
    """
    ref = f"#qa-open:{quote(doc_id, safe='')}:{int(start)}:{int(end)}"
    return ref + (f":{int(answer[0])}:{int(answer[1])}" if answer is not None else "")


def parse_ref(ref: str) -> tuple[str, int, int, tuple[int, int] | None] | None:
    """The inverse of :func:`open_ref`; ``None`` for anything malformed."""
    parts = str(ref).removeprefix("#").split(":")
    if len(parts) not in (4, 6) or parts[0] != "qa-open":
        return None
    try:
        numbers = [int(x) for x in parts[2:]]
    except ValueError:
        return None
    return unquote(parts[1]), numbers[0], numbers[1], (numbers[2], numbers[3]) if len(numbers) == 4 else None


def _one_line(markup: str) -> str:
    """Collapse whitespace: chat messages go through Markdown, where a blank line would end the HTML block."""
    return re.sub(r"\s+", " ", markup).strip()


def confidence_label(score: float, threshold: float) -> str:
    """High / Medium / Low: how far the answer's probability clears the abstention threshold.

    The margin is ``(score - threshold) / (1 - threshold)``, the share of the way from the threshold to
    certainty: High from 0.4, Medium from 0.1, Low below (and for any score under the threshold).
    """
    if score < threshold:
        return "Low"
    margin = (score - threshold) / max(1e-9, 1.0 - threshold)
    return "High" if margin >= 0.4 else "Medium" if margin >= 0.1 else "Low"


def answer_places(answer: "Answer") -> list[tuple[str, int, int]]:
    """Every (doc_id, start, end) where the given answer's text was found."""
    if answer.abstained or not answer.alternatives:
        return []
    best = answer.alternatives[0]
    return list(dict.fromkeys([(best.doc_id, best.start, best.end), *best.occurrences]))


def _inside(place: tuple[str, int, int], doc_id: str, start: int, end: int) -> bool:
    return place[0] == doc_id and start <= place[1] and place[2] <= end


def render_answer(answer: "Answer", threshold: float, documents: dict[str, "Document"]) -> str:
    """The chat reply: bold short answer, confidence, highlighted evidence and numbered citations."""
    if answer.abstained:
        return render_abstention(answer, threshold, documents)
    places = answer_places(answer)
    cites = []
    evidence_html = html.escape(answer.evidence)
    for n, c in enumerate(answer.citations, start=1):
        inner = next((p for p in places if _inside(p, c.doc_id, c.start, c.end)), None)
        if n == 1:
            marks = [(inner[1] - c.start, inner[2] - c.start, "<mark>", "</mark>")] if inner else []
            evidence_html = highlight(c.quote, marks)
        where = c.location or documents[c.doc_id].location_at(c.start)
        cites.append(
            f'<a class="qa-cite" href="{_attr(open_ref(c.doc_id, c.start, c.end, inner[1:] if inner else None))}" '
            f'title="Open the document at this passage">'
            f'<span class="qa-cite-n">[{n}]</span> {html.escape(c.title)}'
            f' <span class="qa-cite-loc">· {html.escape(where)}</span></a>'
        )
    label = confidence_label(answer.score, threshold)
    markup = (
        '<div class="qa-reply">'
        f'<p class="qa-short"><strong>{html.escape(answer.text or "")}</strong></p>'
        f'<blockquote class="qa-evidence">{evidence_html}</blockquote>'
        f'<p class="qa-cites">{" ".join(cites)}</p>'
        f'<p class="qa-conf qa-conf-{label.lower()}" title="Probability the reader gives this answer; '
        f'the app answers from {threshold:.2f}">{label} confidence · {answer.score:.2f}</p>'
        "</div>"
    )
    return _one_line(markup)


def render_abstention(answer: "Answer", threshold: float, documents: dict[str, "Document"], closest: int = 3) -> str:
    """The reply when the pipeline abstains: a plain statement and the closest passages."""
    items = []
    for hit in answer.hits[:closest]:
        p = hit.passage
        doc = documents[p.doc_id]
        snippet = " ".join(p.text.split())
        snippet = snippet[:200].rsplit(" ", 1)[0] + "…" if len(snippet) > 200 else snippet
        items.append(
            f'<li><a class="qa-link" href="{_attr(open_ref(p.doc_id, p.start, p.end))}">'
            f'{html.escape(doc.title)} <span class="qa-cite-loc">· {html.escape(doc.location_at(p.start))}</span></a>'
            f'<span class="qa-snippet">{html.escape(snippet)}</span></li>'
        )
    why = (f"The best candidate scored {answer.score:.2f}, below the answer threshold of {threshold:.2f}."
           if answer.alternatives else "The reader found no candidate answer.")
    listing = f'<p class="qa-muted">Closest passages:</p><ol class="qa-closest">{"".join(items)}</ol>' if items else ""
    return _one_line(
        f'<div class="qa-reply qa-abstain"><p class="qa-short">{ABSTAIN_TEXT}</p>'
        f'<p class="qa-muted">{html.escape(why)}</p>{listing}</div>'
    )


def _snippet(text: str, focus: tuple[int, int] | None, size: int = SNIPPET_CHARS) -> tuple[int, int]:
    """A window of about ``size`` characters of ``text``, centred on ``focus`` when given, cut at spaces."""
    if len(text) <= size:
        return 0, len(text)
    centre = (focus[0] + focus[1]) // 2 if focus else 0
    start = max(0, min(centre - size // 2, len(text) - size))
    end = min(len(text), start + size)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < (focus[0] if focus else end) else start
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > (focus[1] if focus else start) else end
    return start, end


def render_sources(
    hits: Sequence["Hit"], documents: dict[str, "Document"], places: Sequence[tuple[str, int, int]] = ()
) -> str:
    """The sources panel: one card per retrieved passage, the answer highlighted where it occurs."""
    if not hits:
        return '<div class="qa-empty">Retrieved passages appear here after you ask a question.</div>'
    cards = []
    for hit in hits:
        p = hit.passage
        doc = documents[p.doc_id]
        inner = next((pl for pl in places if _inside(pl, p.doc_id, p.start, p.end)), None)
        focus = (inner[1] - p.start, inner[2] - p.start) if inner else None
        s, e = _snippet(p.text, focus)
        marks = [(focus[0] - s, focus[1] - s, "<mark>", "</mark>")] if focus else []
        body = ("…" if s > 0 else "") + highlight(p.text[s:e], marks) + ("…" if e < len(p.text) else "")
        badge = '<span class="qa-badge">answer</span>' if inner else ""
        cards.append(
            f'<a class="qa-source{" qa-source-answer" if inner else ""}" title="Open the whole document" '
            f'href="{_attr(open_ref(p.doc_id, p.start, p.end, inner[1:] if inner else None))}">'
            f'<div class="qa-source-head"><span class="qa-rank">{hit.rank}</span>'
            f'<span class="qa-source-title">{html.escape(doc.title)}</span>{badge}</div>'
            f'<div class="qa-source-meta">{html.escape(doc.location_at(p.start))} · '
            f'<span title="Retrieval score: higher matches the question better">score {hit.score:.3f}</span></div>'
            f'<div class="qa-source-text">{body}</div></a>'
        )
    return f'<div class="qa-sources">{"".join(cards)}</div>'


def render_document(
    doc: "Document", focus: tuple[int, int] | None = None, answer: tuple[int, int] | None = None
) -> str:
    """The whole document, escaped, with the cited span (``focus``) and the answer inside it highlighted.

    The focused span carries ``id="qa-focus"``; the viewer scrolls it into view.
    """
    n = len(doc.text)
    marks: list[Mark] = []
    where = ""
    if focus is not None:
        s, e = max(0, min(focus[0], n)), max(0, min(focus[1], n))
        if e > s:
            marks.append((s, e, '<mark id="qa-focus" class="qa-focus">', "</mark>"))
            where = f' · <span class="qa-doc-where">highlighted: {html.escape(doc.location_at(s))}</span>'
    if answer is not None:
        marks.append((answer[0], answer[1], '<mark class="qa-hit">', "</mark>"))
    return (
        '<div class="qa-doc">'
        f'<div class="qa-doc-head"><h3>{html.escape(doc.title)}</h3>'
        f'<div class="qa-doc-meta">{html.escape(doc.id)} · {n:,} characters{where}</div></div>'
        f'<div class="qa-doc-text">{highlight(doc.text, marks)}</div></div>'
    )


PLACEHOLDER = ('<div class="qa-placeholder"><h3>Ask a question about the documents</h3><p>Every answer is quoted '
               "word for word from a document, with a citation that opens it. When the documents don't say, neither "
               "does the app.</p></div>")
EMPTY_VIEWER = ('<div class="qa-empty">Click a citation such as <b>[1]</b>, or a source, to read the whole document '
                "here.</div>")


# ---------------------------------------------------------------- answering


# ---------------------------------------------------------------- feedback


class FeedbackLog:
    """Thumbs up/down, appended as JSON lines in the question-set schema ``qa eval`` reads.

    Each line: ``{"id", "question", "answers", "doc_id", "kind": "feedback", "verdict", "answer",
    "citations", "time"}``; ``answers`` is ``[answer]`` and ``doc_id`` the cited document for a thumbs up on
    an answer, else ``[]`` and ``None`` (what was shown stays in ``answer`` and ``citations``).
    Appends are serialised by a lock (and ``flock`` where the platform has it, for several processes).
    """

    def __init__(self, path: str | Path = DEFAULT_FEEDBACK):
        self.path = Path(path)
        self._lock = threading.Lock()

    @staticmethod
    def record(payload: dict, verdict: str) -> dict:
        """The feedback line for one ``QA.to_json`` payload and a verdict ("up" or "down")."""
        if verdict not in ("up", "down"):
            raise ValueError(f"A verdict is 'up' or 'down', got {verdict!r}.")
        answer = payload.get("answer")
        citations = payload.get("citations") or []
        confirmed = verdict == "up" and bool(answer)  # only then are the answer and its document a gold label
        return {
            "id": f"feedback-{uuid.uuid4().hex[:12]}",
            "question": payload["question"],
            "answers": [answer] if confirmed else [],
            "doc_id": citations[0]["doc_id"] if confirmed and citations else None,
            "kind": "feedback",
            "verdict": verdict,
            "answer": answer,
            "citations": citations,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                f.write(line)
                f.flush()
        logger.info("feedback %s on %r written to %s", row["verdict"], row["question"], self.path)


# ---------------------------------------------------------------- the app

CSS = """
.gradio-container { max-width: 1480px !important; margin: 0 auto; }
#qa-header h1 { font-size: 1.6rem; font-weight: 650; margin: 0.2rem 0 0.1rem; letter-spacing: -0.01em; }
#qa-header p { color: var(--body-text-color-subdued); margin: 0 0 0.4rem; font-size: 0.95rem; }
.qa-reply { line-height: 1.55; }
.qa-reply p { margin: 0.15rem 0 0.45rem; }
.qa-short { font-size: 1.12rem; }
.qa-evidence { margin: 0.3rem 0 0.55rem !important; padding: 0.45rem 0.8rem !important;
  border-left: 3px solid var(--color-accent) !important; background: var(--background-fill-secondary);
  border-radius: 0 6px 6px 0; font-style: normal !important; color: var(--body-text-color) !important; }
.qa-reply mark, .qa-sources mark, .qa-doc mark.qa-hit { background: #fde68a; color: inherit; padding: 0 2px;
  border-radius: 3px; }
.qa-cites { display: flex; flex-wrap: wrap; gap: 0.35rem; }
a.qa-cite { display: inline-block; text-decoration: none !important; cursor: pointer; padding: 0.12rem 0.5rem;
  border: 1px solid var(--border-color-primary); border-radius: 999px; font-size: 0.86rem;
  color: var(--body-text-color) !important; background: var(--background-fill-primary); }
a.qa-cite:hover { border-color: var(--color-accent); background: var(--background-fill-secondary); }
a.qa-link { color: var(--body-text-color) !important; text-decoration: none !important; font-weight: 500;
  cursor: pointer; }
a.qa-link:hover { color: var(--color-accent) !important; text-decoration: underline !important; }
.qa-cite-n { font-weight: 650; color: var(--color-accent); }
.qa-cite-loc { color: var(--body-text-color-subdued); }
.qa-conf { font-size: 0.8rem; color: var(--body-text-color-subdued); }
.qa-conf::before { content: ""; display: inline-block; width: 0.55rem; height: 0.55rem; border-radius: 50%;
  margin-right: 0.35rem; vertical-align: 0.05rem; background: #9ca3af; }
.qa-conf-high::before { background: #16a34a; } .qa-conf-medium::before { background: #d97706; }
.qa-conf-low::before { background: #dc2626; }
.qa-muted { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.qa-closest { margin: 0.2rem 0 0 1.1rem; padding: 0; }
.qa-closest li { margin-bottom: 0.4rem; }
.qa-snippet { display: block; font-size: 0.86rem; color: var(--body-text-color-subdued); margin-top: 0.15rem; }
#qa-sources, #qa-viewer, .qa-sources, .qa-doc, .qa-empty { text-align: left !important; }
.qa-sources { display: flex; flex-direction: column; gap: 0.6rem; }
a.qa-source { display: block; text-decoration: none !important; color: var(--body-text-color) !important; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.6rem 0.75rem;
  cursor: pointer; background: var(--background-fill-primary); transition: border-color .15s, box-shadow .15s; }
.qa-source:hover { border-color: var(--color-accent); box-shadow: 0 1px 6px rgba(0,0,0,.06); }
.qa-source-answer { border-left: 3px solid #f59e0b; }
.qa-source-head { display: flex; align-items: center; gap: 0.5rem; font-weight: 600; }
.qa-rank { display: inline-flex; align-items: center; justify-content: center; min-width: 1.4rem; height: 1.4rem;
  border-radius: 50%; background: var(--background-fill-secondary); font-size: 0.8rem; }
.qa-source-title { flex: 1; }
.qa-badge { font-size: 0.72rem; font-weight: 600; color: #92400e; background: #fef3c7; border-radius: 999px;
  padding: 0.05rem 0.5rem; }
.qa-source-meta { font-size: 0.78rem; color: var(--body-text-color-subdued); margin: 0.1rem 0 0.3rem 1.9rem; }
.qa-source-text { font-size: 0.9rem; line-height: 1.5; }
.qa-doc-head h3 { margin: 0 0 0.1rem; font-size: 1.15rem; }
.qa-doc-meta { font-size: 0.8rem; color: var(--body-text-color-subdued); margin-bottom: 0.6rem; }
.qa-doc-text { white-space: pre-wrap; font-size: 0.95rem; line-height: 1.65; max-height: 68vh; overflow-y: auto;
  padding: 0.2rem 0.9rem 0.2rem 0.2rem; position: relative; font-family: Georgia, "Times New Roman", serif; }
.qa-doc mark.qa-focus { background: #dbeafe; color: inherit; border-radius: 3px; padding: 1px 0;
  box-shadow: 0 0 0 1px #93c5fd; }
.qa-doc mark.qa-focus mark.qa-hit { background: #fde68a; }
.qa-empty { color: var(--body-text-color-subdued); padding: 1.2rem 0.4rem; font-size: 0.92rem; }
#qa-side { min-height: 640px; }
.qa-placeholder { text-align: center; max-width: 28rem; margin: 0 auto; padding: 1rem; }
.qa-placeholder h3 { font-size: 1.15rem; font-weight: 600; margin-bottom: 0.4rem; }
.qa-placeholder p { color: var(--body-text-color-subdued); font-size: 0.93rem; line-height: 1.5; }
"""

# On the page header, which is always mounted (a tab's content may not be): a click on any "#qa-open:..." link
# (a citation in the chat, a source card) fires the header's "open" event with the link's fragment.
OPEN_JS = """
const handler = (event) => {
  const link = event.target && event.target.closest ? event.target.closest('a[href^="#qa-open:"]') : null;
  if (!link) return;
  event.preventDefault();
  event.stopPropagation();
  trigger('open', {ref: link.getAttribute('href')});
};
if (window.__qaOpenHandler) document.removeEventListener('click', window.__qaOpenHandler, true);
window.__qaOpenHandler = handler;
document.addEventListener('click', handler, true);
"""

# On the viewer: bring the highlighted span into view when the viewer appears and whenever it changes.
VIEWER_JS = """
const reveal = () => requestAnimationFrame(() => {
  const focus = element.querySelector('#qa-focus .qa-hit') || element.querySelector('#qa-focus');
  const box = element.querySelector('.qa-doc-text');
  if (!focus || !box) return;
  if (box.scrollHeight > box.clientHeight) box.scrollTop = Math.max(0, focus.offsetTop - box.clientHeight / 3);
  else focus.scrollIntoView({block: 'center'});
});
reveal();
watch('value', reveal);
"""


def build_app(
    qa: "QA",
    feedback: FeedbackLog | None = None,
    examples: Sequence[str] = (),
    title: str = TITLE,
    corpus_name: str = "",
    cache_size: int = DEFAULT_SIZE,
    cache_bytes: int = DEFAULT_MAX_BYTES,
) -> "gr.Blocks":
    """The Gradio Blocks app around one shared, read-only ``qa`` (safe across the queue's workers).

    Args:
        qa: the loaded pipeline.
        feedback: where thumbs up/down go (default: ``feedback/feedback.jsonl`` in the current folder).
        examples: questions offered as one-click examples.
        title: the page heading.
        corpus_name: shown in the description line, e.g. the documents' folder.
        cache_size: answers remembered (see :class:`AnswerCache`); 0 runs the pipeline for every request.
        cache_bytes: bytes of questions and answers remembered, at most.
    """
    import gradio as gr

    feedback = feedback or FeedbackLog()
    answers = AnswerCache(qa, cache_size, cache_bytes)
    documents = qa.documents
    doc_choices = sorted(((d.title, d.id) for d in documents.values()), key=lambda c: c[0].lower())

    def add_question(question: str, history: list[dict]) -> tuple[str, list[dict], str]:
        question = (question or "").strip()
        if not question:
            return "", history, ""
        return "", [*history, {"role": "user", "content": html.escape(question)}], question

    def answer(question: str, history: list[dict], turns: dict, top_k: float, mode: str, threshold: float):
        if not question:
            return history, turns, gr.skip()
        try:
            result = answers.ask(question, top_k=int(top_k), mode=mode, threshold=float(threshold))
        except ValueError as err:  # a question or setting the pipeline refuses: say so in the chat
            logger.info("refused %r: %s", question, err)
            reply = f'<div class="qa-reply"><p class="qa-muted">{html.escape(str(err))}</p></div>'
            return [*history, {"role": "assistant", "content": reply}], turns, gr.skip()
        logger.info("answered %r -> %r (%.2f) in %.0f ms", question, result.text, result.score,
                    result.timings.get("total_ms", 0.0))
        history = [*history, {"role": "assistant", "content": render_answer(result, float(threshold), documents)}]
        turns = {**turns, len(history) - 1: qa.to_json(result)}
        return history, turns, render_sources(result.hits, documents, answer_places(result))

    def on_like(turns: dict, data: gr.LikeData) -> None:
        payload = turns.get(data.index if isinstance(data.index, int) else data.index[0])
        if payload is None or data.liked not in (True, False):
            return  # a user message, or feedback taken back
        feedback.append(FeedbackLog.record(payload, "up" if data.liked else "down"))
        gr.Info("Thanks, feedback saved.")

    def open_document(data: gr.EventData):
        ref = parse_ref((data._data or {}).get("ref", ""))
        doc = documents.get(ref[0]) if ref else None
        if doc is None:  # only indexed documents are shown; nothing the page sends names a file
            logger.info("ignored a request to open %r", data._data)
            return gr.skip(), gr.skip(), gr.skip()
        _, start, end, hit = ref
        return render_document(doc, (start, end), hit), gr.Tabs(selected="document"), gr.Dropdown(value=doc.id)

    def pick_document(doc_id: str | None):
        doc = documents.get(doc_id or "")
        return render_document(doc) if doc else EMPTY_VIEWER

    def clear():
        empty_sources = render_sources([], documents)
        return [], {}, "", empty_sources, EMPTY_VIEWER, gr.Tabs(selected="sources"), gr.Dropdown(value=None)

    def ask_api(question: str) -> dict:
        """Answer a question from the documents; returns the same JSON object as `qa ask --json`."""
        try:
            return qa.to_json(answers.ask(question))
        except ValueError as err:
            raise gr.Error(str(err)) from err

    n_docs = len(documents)
    description = (f"Answers quoted word for word from {n_docs} indexed document{'s' if n_docs != 1 else ''}"
                   f"{f' ({corpus_name})' if corpus_name else ''}, each with a citation you can open.")
    private = {"api_visibility": "private"}
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        header = gr.HTML(f"<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>", elem_id="qa-header",
                         js_on_load=OPEN_JS)
        turns = gr.State({})
        pending = gr.State("")
        with gr.Row(equal_height=False):
            with gr.Column(scale=11, min_width=420):
                chatbot = gr.Chatbot(
                    height=540, show_label=False, elem_id="qa-chat", latex_delimiters=[], buttons=["copy"],
                    placeholder=PLACEHOLDER,
                )
                with gr.Row():
                    question = gr.Textbox(placeholder="e.g. When do primary care trusts go live?", show_label=False,
                                          scale=8, container=False, autofocus=True, elem_id="qa-question", max_lines=4)
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="qa-ask")
                    clear_btn = gr.Button("Clear", variant="secondary", scale=1, min_width=80, elem_id="qa-clear")
                if examples:
                    gr.Examples(examples=[[q] for q in examples], inputs=[question], label="Try a question")
            with gr.Column(scale=9, min_width=360, elem_id="qa-side"):
                with gr.Tabs(selected="sources") as tabs:
                    with gr.Tab("Sources", id="sources"):
                        sources = gr.HTML(render_sources([], documents), elem_id="qa-sources", js_on_load=None)
                    with gr.Tab("Document", id="document"):
                        picker = gr.Dropdown(choices=doc_choices, value=None, label="Document", show_label=False,
                                             container=False, elem_id="qa-doc-picker")
                        viewer = gr.HTML(EMPTY_VIEWER, elem_id="qa-viewer", js_on_load=VIEWER_JS)
                    with gr.Tab("Settings", id="settings"):
                        top_k = gr.Slider(1, 20, value=5, step=1, label="Passages to read",
                                          info="How many retrieved passages the reader searches for the answer.")
                        mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval",
                                        info="hybrid fuses meaning (dense) and keyword (BM25) search.")
                        threshold = gr.Slider(
                            0.0, 1.0, value=round(qa.threshold, 2), step=0.01, label="Answer threshold",
                            info=f"Answer only when the reader's confidence reaches this, else say the documents "
                                 f"don't say (calibrated default: {qa.threshold:.2f}).")

        chain = dict(inputs=[pending, chatbot, turns, top_k, mode, threshold], outputs=[chatbot, turns, sources],
                     concurrency_id="answer", **private)
        for trigger in (question.submit, ask.click):
            trigger(add_question, [question, chatbot], [question, chatbot, pending], queue=False, **private).then(
                answer, **chain)
        chatbot.like(on_like, [turns], None, queue=False, **private)
        header.open(open_document, None, [viewer, tabs, picker], queue=False, **private)
        picker.input(pick_document, [picker], [viewer], queue=False, **private)
        for trigger in (clear_btn.click, chatbot.clear):
            trigger(clear, None, [chatbot, turns, pending, sources, viewer, tabs, picker], queue=False, **private)
        gr.api(ask_api, api_name="ask", concurrency_id="answer")
    return app


# System fonts only: the app works offline, so nothing is fetched from a font service.
FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")


def launch(
    app: "gr.Blocks",
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    share: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    block: bool = True,
) -> str:
    """Start the server (queue with ``concurrency`` answers at once); returns the local URL.

    With ``block=False`` the server runs in a background thread; stop it with ``app.close()``.
    """
    import gradio as gr

    app.queue(default_concurrency_limit=concurrency, max_size=1000)
    _, url, _ = app.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=not block,
        show_error=True, footer_links=["api"], css=CSS,
        theme=gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=FONTS),
    )
    if block:
        app.block_thread()
    return url


# ---------------------------------------------------------------- startup and command line


def default_index(docs: str | Path) -> Path:
    """Where a documents folder's index lives: ``embeddings/`` beside the bundled ``seeds/`` corpus,
    else ``.qa-index/<folder name>`` under the current directory."""
    docs = Path(docs)
    if docs.resolve() == Path(DEFAULT_DOCS).resolve():
        return docs.parent / "embeddings"
    return Path(".qa-index") / docs.resolve().name


def load_qa(
    docs: str | Path, index: str | Path, reader: str | Path | None = None, threshold: float | None = None
) -> "QA":
    """Load the index (building or updating it first when it is missing or stale) and the reader."""
    from qa.stores.local import IndexNotFoundError, StaleIndexError, build_index, docs_dir_of
    from qa.answering.pipeline import QA

    try:
        qa = QA.load(index, reader_dir=reader, threshold=threshold)
    except (IndexNotFoundError, StaleIndexError) as err:
        logger.info("%s", err)
        state = "missing" if isinstance(err, IndexNotFoundError) else "out of date"
        logger.warning("The index at %s is %s: building it from %s ...", index, state, docs)
        if not Path(docs).is_dir():
            raise FileNotFoundError(f"No documents folder at {docs}: pass --docs DIR.") from err
        stats = build_index(docs, index, show_progress=True)
        logger.warning("Indexed %d documents (%d passages) in %.1fs.", stats.documents, stats.passages, stats.seconds)
        return QA.load(index, reader_dir=reader, threshold=threshold)
    manifest = qa.retriever.index.manifest
    built_from = docs_dir_of(index, manifest)
    if manifest.get("docs_dir") and Path(docs).is_dir() and built_from != Path(docs).resolve():
        raise ValueError(f"The index at {index} holds the documents of {built_from}, not {docs}: "
                         f"pass --index with another folder (or leave it out) to serve {docs}.")
    return qa


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", default=DEFAULT_DOCS,
                   help="folder of .txt/.md/.html/.pdf documents to serve (default: seeds, the bundled corpus)")
    p.add_argument("--index", default=None,
                   help="index folder, built or updated on start when missing or stale (default: embeddings for "
                        "seeds, else .qa-index/<docs folder name> under the current directory)")
    p.add_argument("--reader", default=None, help="reader model folder (default: the packaged reader)")
    p.add_argument("--threshold", type=float, default=None,
                   help="default answer threshold, 0-1 (default: calibrated); users can change it in Settings")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (off by default)")
    p.add_argument("--feedback", default=str(DEFAULT_FEEDBACK), metavar="FILE",
                   help="JSON-lines file that thumbs up/down are appended to, one question-set row each "
                        "(readable by `qa eval`; default: feedback/feedback.jsonl in the current directory)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                   help=f"questions answered at once; the rest wait in the queue (default: {DEFAULT_CONCURRENCY})")
    p.add_argument("--cache-size", type=int, default=DEFAULT_SIZE,
                   help=f"answers remembered for repeated questions, 0 to turn off (default: {DEFAULT_SIZE})")
    p.add_argument("--cache-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20,
                   help=f"memory the remembered answers may take, in MiB (default: {DEFAULT_MAX_BYTES // 2**20})")
    p.add_argument("--title", default=TITLE, help=f"page title (default: {TITLE!r})")


def cmd_serve(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1.")
    index = Path(args.index) if args.index else default_index(args.docs)
    qa = load_qa(args.docs, index, args.reader, args.threshold)
    print("Loading the models ...", file=sys.stderr)
    qa.ask("warm up", top_k=1)  # load the encoder and reader now, not on the first user's question
    bundled = Path(args.docs).resolve() == Path(DEFAULT_DOCS).resolve()
    app = build_app(qa, FeedbackLog(args.feedback), BUNDLED_EXAMPLES if bundled else (), args.title,
                    corpus_name=Path(args.docs).resolve().name, cache_size=args.cache_size,
                    cache_bytes=int(args.cache_mb * 2**20))
    launch(app, args.host, args.port, args.share, args.concurrency, block=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qa serve`` to the ``qa`` command."""
    p = subparsers.add_parser(
        "serve", help="start the browser chat app (and its /ask API)",
        description="Start the chat app on http://HOST:PORT/. The index is loaded, or built when missing or "
                    "stale. Thumbs up/down are appended to --feedback. API: "
                    "Client(url).predict(question, api_name='/ask').",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: the same options as ``qa serve``."""
    from qa.stores.local import IndexNotFoundError, StaleIndexError

    from qa.errors import offline_mode

    offline_mode()
    parser = argparse.ArgumentParser(prog="app.py", description="The document question-answering chat app.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each question and answer")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return cmd_serve(args)
    except (ValueError, FileNotFoundError, IndexNotFoundError, StaleIndexError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
