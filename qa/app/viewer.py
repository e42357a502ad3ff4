"""The document viewer: the original, with the cited sentence and the answer highlighted.

- Markdown is shown formatted (headings, lists, emphasis, links, tables of CommonMark, rendered by
  markdown-it-py with raw HTML escaped and images shown as their alt text, so nothing is fetched) up
  to ``format_chars`` characters, and as its plain text beyond (markdown-it takes superlinear time on
  some inputs: seconds for a pathological megabyte); each rendering is kept, a few at a time, so a
  second click on a citation is not rendered again;
- a PDF shows its real page, rendered by pypdfium2 (:mod:`qa.ingest.pdf_pages`) with the cited
  sentence and the answer boxed where pdfium finds their characters, beside the extracted text;
- anything else is its extracted text (:func:`qa.app.render.render_document`).

Highlights in formatted Markdown: private-use characters are put into the source at the highlights'
edges before rendering and turned into ``<mark>`` elements afterwards, inside each run of text only,
so a highlight that crosses a paragraph or a bold word still nests validly.

Example:
    >>> html = Viewer(docs_dir="docs").render(doc, focus=(120, 180), answer=(140, 150))
"""

from __future__ import annotations

import base64
import html
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from qa.app.limits import VIEWER_FORMAT_CHARS as FORMAT_CHARS
from qa.app.render import document_head, render_document

if TYPE_CHECKING:
    from qa.ingest.pdf_pages import PageView
    from qa.types import Document

logger = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = (".md", ".markdown")
PAGES_KEPT = 16  # rendered PDF pages remembered (a few MB)
RENDERINGS_KEPT = 32  # formatted Markdown views remembered (at most 32 x the largest formatted document)

# Private-use characters marking where highlights open and close in Markdown source.
_FOCUS_ON, _FOCUS_OFF, _HIT_ON, _HIT_OFF = "\ue000", "\ue001", "\ue002", "\ue003"
_SENTINELS = re.compile("[\ue000-\ue003]")
# Block syntax at the start of a line that a highlight's opening must not split.
_LINE_SYNTAX = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d{1,9}[.)][ \t]+|>[ \t]?)*")
_TAG_OR_TEXT = re.compile(r"(<[^>]*>)")


def _place_opening(text: str, pos: int) -> int:
    """``pos`` moved past the block syntax (``# ``, ``- ``, ``1. ``, ``> ``) when it is at a line's start."""
    if pos == 0 or text[pos - 1] == "\n":
        return pos + _LINE_SYNTAX.match(text, pos).end() - pos
    return pos


def _place_closing(text: str, pos: int, floor: int) -> int:
    """``pos`` moved back over whitespace (a highlight ends with its last word), not before ``floor``."""
    while pos > floor and text[pos - 1].isspace():
        pos -= 1
    return pos


def markdown_html(text: str, focus: tuple[int, int] | None = None, answer: tuple[int, int] | None = None) -> str:
    """``text`` (Markdown) as HTML, with ``focus`` and ``answer`` (character ranges of ``text``) highlighted.

    The first piece of the focus carries ``id="qa-focus"``; the viewer scrolls it into view.
    """
    from markdown_it import MarkdownIt

    text = _SENTINELS.sub("", text) if _SENTINELS.search(text) else text
    edits: list[tuple[int, int, str]] = []  # (position, order at that position, sentinel)
    n = len(text)
    for span, on, off, outer in ((focus, _FOCUS_ON, _FOCUS_OFF, True), (answer, _HIT_ON, _HIT_OFF, False)):
        if span is None:
            continue
        s, e = max(0, min(span[0], n)), max(0, min(span[1], n))
        s = _place_opening(text, s)
        e = _place_closing(text, e, s)
        if e > s:  # at one position: closings first, an outer opening before an inner one
            edits += [(s, 1 if outer else 2, on), (e, 0 if outer else -1, off)]
    pieces, last = [], 0
    for pos, _, mark in sorted(edits):
        pieces += [text[last:pos], mark]
        last = pos
    source = "".join(pieces) + text[last:]

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.renderer.rules["image"] = lambda tokens, idx, options, env: html.escape(tokens[idx].content)
    rendered = md.render(source)
    rendered = rendered.replace("<a href=", '<a target="_blank" rel="noopener noreferrer" href=')
    return _marks_from_sentinels(rendered)


def _marks_from_sentinels(rendered: str) -> str:
    """Turn the sentinels into ``<mark>`` elements opened and closed inside each run of text."""
    focus = hit = False
    focus_id_used = False
    out = []
    for chunk in _TAG_OR_TEXT.split(rendered):
        if chunk.startswith("<"):
            out.append(_SENTINELS.sub("", chunk))  # a sentinel inside a tag (a link's address) is dropped
            continue
        for piece in re.split(r"([\ue000-\ue003])", chunk):
            if piece in (_FOCUS_ON, _FOCUS_OFF, _HIT_ON, _HIT_OFF):
                focus = piece == _FOCUS_ON if piece in (_FOCUS_ON, _FOCUS_OFF) else focus
                hit = piece == _HIT_ON if piece in (_HIT_ON, _HIT_OFF) else hit
                continue
            if not piece:
                continue
            if not (focus or hit) or (piece.isspace() and "\n" in piece):  # the line break between blocks
                out.append(piece)
                continue
            opening = closing = ""
            if focus:
                ident = "" if focus_id_used else ' id="qa-focus"'
                focus_id_used = True
                opening, closing = f'<mark class="qa-focus"{ident}>', "</mark>"
            if hit:
                opening, closing = opening + '<mark class="qa-hit">', "</mark>" + closing
            out.append(opening + piece + closing)
    return "".join(out)


def _box_spans(boxes, kind: str) -> str:
    return "".join(
        f'<span class="qa-page-{kind}" style="left:{100 * l:.3f}%;top:{100 * t:.3f}%;'
        f'width:{100 * (r - l):.3f}%;height:{100 * (b - t):.3f}%"></span>'
        for l, t, r, b in boxes)


class Viewer:
    """Renders documents for the viewer panel, remembering the last :data:`PAGES_KEPT` PDF pages and
    :data:`RENDERINGS_KEPT` formatted Markdown views.

    Args:
        docs_dir: the served folder, where a document's file is found by its ``file``; ``None`` uses
            the ``path`` recorded at indexing.
        format_chars: Markdown up to this many characters is formatted; longer, shown as plain text.
    """

    def __init__(self, docs_dir: str | Path | None = None, format_chars: int = FORMAT_CHARS):
        self.docs_dir = Path(docs_dir) if docs_dir is not None else None
        self.format_chars = format_chars
        self._pages: OrderedDict[tuple, "PageView"] = OrderedDict()
        self._renderings: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def source_of(self, doc: "Document") -> Path:
        return self.docs_dir / doc.file if self.docs_dir is not None and doc.file else Path(doc.path)

    def render(self, doc: "Document", focus: tuple[int, int] | None = None,
               answer: tuple[int, int] | None = None) -> str:
        """The viewer's HTML for ``doc``, with ``focus`` (the cited sentence) and ``answer`` highlighted."""
        suffix = Path(doc.file or doc.path).suffix.lower()
        if doc.pages and suffix == ".pdf":
            return self._pdf(doc, focus, answer)
        if suffix in MARKDOWN_SUFFIXES and len(doc.text) <= self.format_chars:
            return self._markdown(doc, focus, answer)
        return render_document(doc, focus, answer)

    def _markdown(self, doc: "Document", focus, answer) -> str:
        key = (doc.id, doc.source_hash, len(doc.text), focus, answer)
        with self._lock:
            if key in self._renderings:
                self._renderings.move_to_end(key)
                return self._renderings[key]
        view = (f'<div class="qa-doc qa-doc-md">{document_head(doc, focus, " · Markdown, formatted")}'
                f'<div class="qa-doc-text qa-doc-formatted">{markdown_html(doc.text, focus, answer)}</div></div>')
        with self._lock:
            self._renderings[key] = view
            while len(self._renderings) > RENDERINGS_KEPT:
                self._renderings.popitem(last=False)
        return view

    def _pdf(self, doc: "Document", focus, answer) -> str:
        text_view = render_document(doc, focus, answer)
        inner = text_view[text_view.index('<div class="qa-doc-text">'):-len("</div>")]
        start = focus[0] if focus is not None else 0
        page = doc.page_at(start) or 1
        try:
            view = self._page(doc, page, focus, answer)
        except (OSError, ValueError) as err:  # a missing, changed or unreadable file: the text alone
            logger.info("no page image for %s page %d: %s", doc.id, page, err)
            note = f'<p class="qa-muted qa-page-missing">The page image is not available: {html.escape(str(err))}.</p>'
            return f'<div class="qa-doc qa-doc-pdf">{document_head(doc, focus)}{note}{inner}</div>'
        focus_boxes, hit_boxes = (view.boxes + ((), ()))[:2]
        located = "the cited sentence is highlighted" if focus_boxes else \
            "the cited words could not be located on this image; see the text beside it" if focus else ""
        image = base64.b64encode(view.png).decode("ascii")
        figure = (
            f'<figure class="qa-page" aria-label="Page {view.page} of {view.pages}">'
            f'<div class="qa-page-sheet" style="aspect-ratio:{view.width}/{view.height}">'
            f'<img alt="Page {view.page} of {html.escape(doc.title)}" src="data:image/png;base64,{image}">'
            f'{_box_spans(focus_boxes, "focus")}{_box_spans(hit_boxes, "hit")}</div>'
            f'<figcaption>Page {view.page} of {view.pages}{" · " + located if located else ""}'
            ' · click the page to zoom</figcaption></figure>'
        )
        return (f'<div class="qa-doc qa-doc-pdf">{document_head(doc, focus)}'
                f'<div class="qa-doc-views">{figure}{inner}</div></div>')

    def _page(self, doc: "Document", page: int, focus, answer) -> "PageView":
        """The rendered page with the focus and answer boxed; refuses a file changed since indexing."""
        from qa.ingest.documents import source_hash
        from qa.ingest.pdf_pages import render_page

        key = (doc.id, doc.source_hash, page, focus, answer)
        with self._lock:
            if key in self._pages:
                self._pages.move_to_end(key)
                return self._pages[key]
        path = self.source_of(doc)
        raw = path.read_bytes()
        if doc.source_hash and source_hash(raw) != doc.source_hash:
            raise ValueError(f"{doc.file or path} has changed since it was indexed")
        starts = dict((number, offset) for offset, number in doc.pages)
        page_start = starts.get(page, 0)
        page_end = starts.get(page + 1, len(doc.text) + 2) - 2
        texts, near = [], []
        for span in (focus, answer):
            if span is None:
                continue
            s, e = max(span[0], page_start), min(span[1], page_end)
            texts.append(doc.text[s:e] if e > s else "")
            near.append((s - page_start) / max(1, page_end - page_start))
        view = render_page(path, page, texts, near)
        with self._lock:
            self._pages[key] = view
            while len(self._pages) > PAGES_KEPT:
                self._pages.popitem(last=False)
        return view
