"""The browser chat app's Gradio wiring: ask in the chat, read the cited sentence, open the document.

The app is wiring only: every answer comes from one shared :class:`qa.answering.pipeline.QA`, every
piece of HTML from :mod:`qa.app.render`, and the page's CSS and scripts are the files in ``static/``.
It also serves a named API endpoint, ``/ask``, returning the ``qa ask --json`` object. Given a :class:`qa.app.documents.DocumentLibrary`, it adds the Documents tab
(upload, delete, re-scan) and the ``/upload`` and ``/delete`` endpoints (:mod:`qa.app.documents_panel`).

Example:
    $ qa serve                     # the bundled corpus (seeds/, index in embeddings/)
    $ python app.py --port 8080
    >>> from gradio_client import Client
    >>> Client("http://127.0.0.1:7860/").predict("When do primary care trusts go live?", api_name="/ask")["answer"]
    'April 2000'
"""


import html
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from qa.answering.question import check_question
from qa.app import conversation
from qa.app.cache import DEFAULT_MAX_BYTES, DEFAULT_SIZE, AnswerCache
from qa.app.defaults import DEFAULT_CONCURRENCY, DEFAULT_HOST, DEFAULT_PORT, TITLE
from qa.app.export import answer_markdown, conversation_markdown, refusal_markdown
from qa.app.feedback import FeedbackLog, confirmation
from qa.app.inputs import check_doc_ids
from qa.app.limits import DELETE_CACHE, Limits
from qa.app.render import (EMPTY_VIEWER, answer_places, parse_ref, question_placeholder, render_answer,
                           render_header, render_placeholder, render_refusal, render_sources)
from qa.app.viewer import Viewer
from qa.errors import UserError
from qa.retrieval import DEFAULT_MODE, MODES

# Type names only: gradio and torch load when the app is built, never at import. No `from __future__ import
# annotations` here: annotations on the event handlers inside build_app must be real objects, so Gradio can
# see which argument takes gr.LikeData.
if TYPE_CHECKING:
    import gradio as gr

    from qa.answering.pipeline import QA
    from qa.app.documents import DocumentLibrary

logger = logging.getLogger(__name__)

SERVER_FAILED = "The server failed to answer; see its log."  # all a client hears of an internal fault

BUNDLED_EXAMPLES = [
    "When do primary care trusts go live?",
    "Who is the chief executive of NHS North West?",
    "Which prime minister appointed the new ministerial team for health?",
    "Where is the Health Services Management Centre?",
    "What are primary care trusts heralded as a UK hybrid of?",
]
STATIC = Path(__file__).parent / "static"
# System fonts only: the app works offline, so nothing is fetched from a font service.
FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")


def static_text(name: str) -> str:
    """The text of one of the app's static files (``app.css``, ``open.js``, ``viewer.js``)."""
    return (STATIC / name).read_text(encoding="utf-8")


def _public_message(err: Exception, question: object) -> str:
    """What a person is told about ``err``: a :class:`UserError`'s message, else :data:`SERVER_FAILED`
    (the fault and its traceback go to the server's log)."""
    shown = question[:200] if isinstance(question, str) else type(question).__name__
    if isinstance(err, UserError):
        logger.info("refused %r: %s", shown, err)
        return str(err)
    logger.error("failed to answer %r", shown, exc_info=err)
    return SERVER_FAILED


def _blocks_class() -> type:
    """``gr.Blocks`` whose API endpoints take their optional trailing arguments as optional over plain
    HTTP too: ``{"data": [question]}`` to ``/ask`` is ``ask_api(question)`` (gradio_client fills
    defaults itself; Gradio's server would refuse the shorter list)."""
    import inspect

    import gradio as gr

    class Blocks(gr.Blocks):
        limits = Limits()  # what launch() enforces at the HTTP layer; build_app sets the app's own

        def validate_inputs(self, block_fn, inputs: list) -> None:
            missing = len(block_fn.inputs) - len(inputs)
            if missing > 0 and block_fn.fn is not None:
                params = list(inspect.signature(block_fn.fn).parameters.values())[len(inputs):len(block_fn.inputs)]
                if len(params) == missing and all(p.default is not p.empty for p in params):
                    inputs.extend(p.default for p in params)  # in place: Gradio reads this list next
            super().validate_inputs(block_fn, inputs)

    return Blocks


def build_app(
    qa: "QA",
    feedback: FeedbackLog | None = None,
    examples: Sequence[str] = (),
    title: str = TITLE,
    corpus_name: str = "",
    cache_size: int = DEFAULT_SIZE,
    cache_bytes: int = DEFAULT_MAX_BYTES,
    library: "DocumentLibrary | None" = None,
    limits: Limits | None = None,
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
        library: the served folder, managed from the page (Documents tab, ``/upload``, ``/delete``);
            the app then answers from ``library.live``, which follows each new index, instead of ``qa``.
        limits: what a request may be (:class:`qa.app.limits.Limits`; default: the library's, else the
            defaults); :func:`launch` enforces those of the HTTP layer.
    """
    import gradio as gr

    limits = limits or (library.limits if library is not None else Limits())
    if library is not None:
        qa = library.live
    view = Viewer(library.docs_dir if library is not None else None, format_chars=limits.viewer_format_chars)
    feedback = feedback or FeedbackLog()
    answers = AnswerCache(qa, cache_size, cache_bytes)
    documents = qa.documents
    doc_choices = sorted(((d.title, d.id) for d in documents.values()), key=lambda c: c[0].lower())
    # The readers a question may name, the default first (a stand-in pipeline in a test may name none).
    readers = tuple(getattr(qa, "reader_names", ()) or (getattr(qa, "reader_name", "") or "default",))

    def add_question(question: str, history: list[dict]) -> tuple[str, list[dict], str]:
        question = (question or "").strip() if isinstance(question, str) else ""
        if not question:
            return "", history, ""
        said = question if len(question) <= limits.question_chars else question[:200] + "…"  # refused next
        return "", [*history, {"role": "user", "content": html.escape(said)}], question

    def answer(question: str, history: list[dict], turns: dict, shown: str, top_k: float, mode: str,
               threshold: float, doc_ids: list[str] | None = None, reader: str | None = None):
        if not question:
            return history, turns, gr.skip(), gr.skip(), gr.skip()
        try:
            result = answers.ask(check_question(question, limits.question_chars), top_k=int(top_k), mode=mode,
                                 threshold=float(threshold),
                                 history=conversation.history_of(turns), doc_ids=list(doc_ids) if doc_ids else None,
                                 reader=reader if reader and reader != readers[0] else None)
        except Exception as err:  # noqa: BLE001 - a refusal is said in the chat, a fault only in the log
            message = _public_message(err, question)
            plain = refusal_markdown(question, message)
            history = [*history, {"role": "assistant", "content": render_refusal(message, plain)}]
            turns = {**turns, len(history) - 1: {"question": question, "error": message, "markdown": plain}}
            return history, turns, gr.skip(), conversation.saved(history, turns, shown), export_file(turns)
        logger.info("answered %r -> %r (%.2f) in %.0f ms", question, result.text, result.score,
                    result.timings.get("total_ms", 0.0))
        setup = getattr(qa, "setups", {}).get(result.reader)  # the calibration of the reader that read it
        bands = setup.bands if setup is not None else getattr(qa, "bands", ())
        plain = answer_markdown(result, documents, float(threshold), bands)
        history = [*history, {"role": "assistant", "content": render_answer(
            result, float(threshold), documents, bands, plain=plain,
            reliability=setup.reliability if setup is not None else ())}]
        turns = {**turns, len(history) - 1: {**qa.to_json(result), "markdown": plain}}
        shown = render_sources(result.hits, documents, answer_places(result))
        return history, turns, shown, conversation.saved(history, turns, shown), export_file(turns)

    def export_file(turns: dict) -> str | None:
        """The conversation as a Markdown file for the Export button (``None``: nothing to export)."""
        texts = [turns[i]["markdown"] for i in sorted(turns) if isinstance(turns[i].get("markdown"), str)]
        if not texts:
            return None
        text = conversation_markdown(texts, title, time.strftime("%Y-%m-%d %H:%M"))
        path = Path(tempfile.mkdtemp(prefix="qa-export-")) / "conversation.md"
        path.write_text(text, encoding="utf-8")
        return str(path)

    def restore(value):
        chat, kept = conversation.restored(value)
        shown = conversation.sources_of(value) if chat else ""
        return chat, kept, export_file(kept), shown or render_sources([], documents)

    def on_like(turns: dict, data: gr.EventData):
        # The event's own data, read here: gr.LikeData subscripts it inside Gradio, and fails there on an
        # event sent without any.
        event = data._data if isinstance(data._data, dict) else {}
        index, liked = event.get("index"), event.get("liked", True)
        index = index[0] if isinstance(index, (list, tuple)) and index else index
        payload = turns.get(index) if isinstance(index, int) and isinstance(turns, dict) else None
        if payload is None or "error" in payload or liked not in (True, False):
            return gr.skip(), gr.skip(), gr.skip()  # a user message, a refusal, or feedback taken back
        row = FeedbackLog.record(payload, "up" if liked else "down")
        feedback.append(row)
        return confirmation(row, feedback.path), gr.Column(visible=True), {"index": index, "rating": row["rating"]}

    def on_correction(text: str, rated: dict, turns: dict):
        payload = turns.get(rated.get("index")) if rated else None
        if payload is None or not (text or "").strip():
            return gr.skip(), gr.skip()
        row = FeedbackLog.record(payload, rated["rating"], correction=text)
        feedback.append(row)
        return confirmation(row, feedback.path), ""

    def open_document(data: gr.EventData):
        ref = parse_ref((data._data or {}).get("ref", ""))
        doc = documents.get(ref[0]) if ref else None
        if doc is None:  # only indexed documents are shown; nothing the page sends names a file
            logger.info("ignored a request to open %r", data._data)
            return gr.skip(), gr.skip(), gr.skip()
        _, start, end, hit = ref
        return view.render(doc, (start, end), hit), gr.Tabs(selected="document"), gr.Dropdown(value=doc.id)

    def pick_document(doc_id: str | None):
        doc = documents.get(doc_id or "")
        return view.render(doc) if doc else EMPTY_VIEWER

    def clear():
        empty_sources = render_sources([], documents)
        return ([], {}, "", empty_sources, EMPTY_VIEWER, gr.Tabs(selected="sources"), gr.Dropdown(value=None),
                conversation.saved([], {}), None, gr.Column(visible=False))

    def ask_api(question: str, history: list | None = None, doc_ids: list | None = None,
                reader: str | None = None) -> dict:
        """Answer a question from the documents; returns the same JSON object as `qa ask --json`.

        `history`: the conversation so far, oldest first (earlier questions, or the objects earlier
        calls returned), so a follow-up such as "And when was it founded?" is searched in context.
        `doc_ids`: search only these documents (their ids, as `/upload` lists them); none: all.
        `reader`: "accurate" or "fast" where the server has both; none: the server's default (which
        reads with the fast one while many questions wait). The answer's "reader" says which read it."""
        try:
            return qa.to_json(answers.ask(check_question(question, limits.question_chars), history=history,
                                          doc_ids=check_doc_ids(doc_ids, limits.id_chars), reader=reader or None))
        except Exception as err:  # noqa: BLE001 - the client hears a refusal, or that the server failed
            raise gr.Error(_public_message(err, question), print_exception=False) from None

    def reader_threshold(name: str) -> float:
        """The calibrated threshold of the reader named ``name`` (the default reader's for any other name)."""
        setups = getattr(qa, "setups", {})
        return setups[name].threshold if name in setups else qa.threshold

    def corpus_texts() -> tuple[str, str, str]:
        """The header, the empty chat and the question box's hint, for the documents indexed now."""
        return (render_header(title, len(documents), corpus_name), render_placeholder(documents),
                question_placeholder(examples, documents))

    built = corpus_texts()

    def corpus_views(changed: bool = True):
        """Updates for what names or counts the documents: after a change, each; on a page load, only
        those that differ from what the page was built with (no update races the person's first typing)."""
        header_text, chat_text, hint = corpus_texts()
        fresh = [changed or now != then for now, then in zip((header_text, chat_text, hint), built)]
        return (header_text if fresh[0] else gr.skip(), gr.Chatbot(placeholder=chat_text) if fresh[1] else gr.skip(),
                gr.Textbox(placeholder=hint) if fresh[2] else gr.skip())

    private = {"api_visibility": "private"}
    # Gradio's cache of uploads and downloads is swept too (handled uploads are deleted at once).
    with _blocks_class()(title=title, analytics_enabled=False, delete_cache=DELETE_CACHE) as app:
        app.limits = limits
        header = gr.HTML(built[0], elem_id="qa-header",
                         js_on_load=static_text("open.js"))
        turns = gr.State({})
        pending = gr.State("")
        rated = gr.State({})  # the turn the last thumbs up/down was on, for a correction
        key = conversation.storage_key(title, *sorted(documents))
        saved_chat = gr.BrowserState(conversation.saved([], {}), storage_key=key, secret=key)
        with gr.Row(equal_height=False):
            with gr.Column(scale=11, min_width=300):
                chatbot = gr.Chatbot(
                    height=540, show_label=False, elem_id="qa-chat", latex_delimiters=[], buttons=["copy"],
                    placeholder=built[1],
                )
                with gr.Column(visible=False, elem_id="qa-feedback") as feedback_box:
                    feedback_note = gr.HTML("", elem_id="qa-feedback-note")
                    with gr.Row():
                        correction = gr.Textbox(placeholder="The right answer is ... (optional)", show_label=False,
                                                scale=8, container=False, elem_id="qa-correction", max_lines=2)
                        send_correction = gr.Button("Send correction", scale=2, min_width=80,
                                                    elem_id="qa-send-correction")
                with gr.Row(elem_id="qa-ask-row"):
                    question = gr.Textbox(placeholder=built[2], show_label=False, max_length=limits.question_chars,
                                          scale=8, container=False, autofocus=True, elem_id="qa-question", max_lines=4)
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="qa-ask")
                    clear_btn = gr.Button("Clear", variant="secondary", scale=1, min_width=80, elem_id="qa-clear")
                    export = gr.DownloadButton("Export", value=None, variant="secondary", scale=1, min_width=80,
                                               elem_id="qa-export")
                doc_filter = gr.Dropdown(choices=doc_choices, value=[], multiselect=True, label="Search only in",
                                         info="Leave empty to search every document.", elem_id="qa-doc-filter")
                if examples:
                    gr.Examples(examples=[[q] for q in examples], inputs=[question], label="Try a question")
            with gr.Column(scale=9, min_width=300, elem_id="qa-side"):
                with gr.Tabs(selected="sources", overflow_behavior="wrap", elem_id="qa-tabs") as tabs:
                    with gr.Tab("Sources", id="sources"):
                        sources = gr.HTML(render_sources([], documents), elem_id="qa-sources", js_on_load=None)
                    with gr.Tab("Viewer", id="document"):  # not "Document": it sat beside "Documents"
                        picker = gr.Dropdown(choices=doc_choices, value=None, label="Document", show_label=False,
                                             container=False, elem_id="qa-doc-picker")
                        viewer = gr.HTML(EMPTY_VIEWER, elem_id="qa-viewer", js_on_load=static_text("viewer.js"))
                    if library is not None:
                        with gr.Tab("Documents", id="documents"):
                            from qa.app.documents_panel import documents_tab

                            changes = documents_tab(library, picker, doc_filter, private, app)
                    with gr.Tab("Settings", id="settings"):
                        top_k = gr.Slider(1, 20, value=qa.top_k, step=1, label="Passages to read",
                                          info="How many retrieved passages the reader searches for the answer.")
                        mode = gr.Radio(list(MODES), value=DEFAULT_MODE, label="Retrieval",
                                        info="hybrid fuses meaning (dense) and keyword (BM25) search.")
                        reader_choice = gr.Radio(
                            list(readers), value=readers[0], label="Reader", visible=len(readers) > 1,
                            elem_id="qa-reader",
                            info="accurate reads with the larger model; fast answers in a fraction of the time, "
                                 "less often right. Each has its own calibrated threshold.")
                        threshold = gr.Slider(
                            0.0, 1.0, value=round(qa.threshold, 2), step=0.01, label="Answer threshold",
                            info=f"Answer only when the chance that the answer is right reaches this, else say the "
                                 f"documents don't say (calibrated default: {qa.threshold:.2f}).")
                        gr.HTML(f'<p class="qa-muted" id="qa-feedback-file">Thumbs up/down and corrections are saved '
                                f"to <code>{html.escape(str(feedback.path.resolve()))}</code> (one JSON line each; "
                                "<code>qa eval</code> reads corrections as labels).</p>")

        reader_choice.change(lambda name: gr.Slider(value=round(reader_threshold(name), 2)), [reader_choice],
                             [threshold], queue=False, **private)
        chain = dict(inputs=[pending, chatbot, turns, sources, top_k, mode, threshold, doc_filter, reader_choice],
                     outputs=[chatbot, turns, sources, saved_chat, export], concurrency_id="answer", **private)
        for trigger in (question.submit, ask.click):
            trigger(add_question, [question, chatbot], [question, chatbot, pending], queue=False, **private).then(
                answer, **chain)
        chatbot.like(on_like, [turns], [feedback_note, feedback_box, rated], queue=False, **private)
        for trigger in (correction.submit, send_correction.click):
            trigger(on_correction, [correction, rated, turns], [feedback_note, correction], queue=False, **private)
        app.load(restore, [saved_chat], [chatbot, turns, export, sources], queue=False, show_progress="hidden",
                 **private)
        header.open(open_document, None, [viewer, tabs, picker], queue=False, **private)
        picker.input(pick_document, [picker], [viewer], queue=False, **private)
        for trigger in (clear_btn.click, chatbot.clear):
            trigger(clear, None, [chatbot, turns, pending, sources, viewer, tabs, picker, saved_chat, export,
                                  feedback_box], queue=False, **private)
        if library is not None:  # what counts or names the documents follows each change, and each page load
            for change in changes:
                change.then(corpus_views, None, [header, chatbot, question], queue=False, show_progress="hidden",
                            **private)
            app.load(lambda: corpus_views(changed=False), None, [header, chatbot, question], queue=False,
                     show_progress="hidden", **private)
        gr.api(ask_api, api_name="ask", concurrency_id="answer")
    return app


def launch(
    app: "gr.Blocks",
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    share: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    block: bool = True,
) -> str:
    """Start the server (queue with ``concurrency`` answers at once); returns the local URL.

    The app's limits (``app.limits``, set by :func:`build_app`) are kept at the HTTP layer: each
    uploaded file by Gradio's ``max_file_size``, every request body by :class:`qa.app.http_limits.BodyLimit`,
    before it is read. With ``block=False`` the server runs in a background thread; stop it with ``app.close()``.
    """
    import gradio as gr
    from starlette.middleware import Middleware

    from qa.app.http_limits import BodyLimit

    limits = getattr(app, "limits", None) or Limits()
    app.queue(default_concurrency_limit=concurrency, max_size=1000)
    _, url, _ = app.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=not block,
        show_error=True, footer_links=["api"], max_file_size=limits.upload_bytes,
        state_session_capacity=limits.sessions,
        app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=limits.request_bytes,
                                              max_form_bytes=limits.upload_request_bytes)]},
        css=static_text("app.css") + static_text("documents.css") + static_text("conversation.css"),
        theme=gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=FONTS),
    )
    if block:
        app.block_thread()
    return url
