"""The chat's HTML, made by pure functions: replies, the sources panel and the document viewer.

Every document text is escaped; the only markup is what these functions write. Links that open the
viewer carry their target in the fragment (``#qa-open:...``), which ``static/open.js`` reads.

Example:
    >>> highlight("a <b> c", [(2, 5, "<mark>", "</mark>")])
    'a <mark>&lt;b&gt;</mark> c'
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Sequence
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from qa.types import Answer, Citation, Document, Hit

SNIPPET_CHARS = 360  # characters of a passage shown in the sources panel
ABSTAIN_TEXT = "The documents don't say."
FOUND_DEPTH = 10  # a search "found" a passage it ranked this high or higher on its own
PLACEHOLDER_TITLES = 5  # document titles named in the empty chat


Mark = tuple[int, int, str, str]  # (start, end, opening tag, closing tag)


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


def confidence_label(score: float, threshold: float, bands: Sequence[dict] = ()) -> str:
    """High / Medium / Low.

    With the reader's measured ``bands`` (``[{"name", "min", ...}]``, most confident first, from its
    calibration): the first band whose ``min`` the score reaches, else Low. Without them: how far the
    score clears the threshold, ``(score - threshold) / (1 - threshold)``: High from 0.4, Medium from
    0.1, Low below (and for any score under the threshold).
    """
    if score < threshold:
        return "Low"
    if bands:
        return next((str(b["name"]) for b in bands if score >= float(b["min"])), "Low")
    margin = (score - threshold) / max(1e-9, 1.0 - threshold)
    return "High" if margin >= 0.4 else "Medium" if margin >= 0.1 else "Low"


SCORE_MEANING = ("The percentage is the chance that the answer is right, as the calibrator measured it on "
                 "documents neither it nor the reader had seen.")


def worth(score: float, reliability: Sequence[dict] = ()) -> str:
    """What a score was worth where the calibrator was measured: the held-out answers of its score range and how
    many were right, when the reader's calibration has them; else what the number means."""
    row = next((r for r in reliability if r["low"] <= score < r["high"] or (r["high"] >= 1.0 and score >= r["low"])),
               None)
    if row is None or not row.get("answers"):
        return SCORE_MEANING + " "
    return (f"Of {row['answers']} answers scored {round(100 * row['low'])}-{round(100 * row['high'])}% on documents "
            f"the model had not seen, {round(100 * row['right'])}% were right. ")


def likely_right(score: float) -> str:
    """The answer's score in words: the calibrated probability that it is right, e.g. ``"87% likely right"``."""
    return f"{round(100 * score)}% likely right"


def read_by(answer: "Answer") -> str:
    """``"; the fast reader read it"``: which reader read the answer, when the pipeline says ("" if not)."""
    return f"; the {answer.reader} reader read it" if getattr(answer, "reader", "") else ""


def answer_places(answer: "Answer") -> list[tuple[str, int, int]]:
    """Every (doc_id, start, end) where the given answer's text was found."""
    if answer.abstained or not answer.alternatives:
        return []
    best = answer.alternatives[0]
    return list(dict.fromkeys([(best.doc_id, best.start, best.end), *best.occurrences]))


def _inside(place: tuple[str, int, int], doc_id: str, start: int, end: int) -> bool:
    return place[0] == doc_id and start <= place[1] and place[2] <= end


def band_meaning(label: str, bands: Sequence[dict] = ()) -> str:
    """What a confidence label means, in measured words where the reader's calibration measured it."""
    band = next((b for b in bands if b.get("name") == label), None)
    if band is None:
        return ("Low: the answer barely clears the threshold; check the quote." if label == "Low" else
                "How far the reader's score clears the answer threshold (this reader has no measured bands).")
    precision = band.get("held_out_precision", band.get("precision"))
    where = "on questions about documents the model never saw" if "held_out_precision" in band else \
        "on the questions it was calibrated on"
    return f"{label}: answers this confident were right {round(100 * precision)}% of the time {where}."


def distinct_paragraphs(citations: Sequence["Citation"], documents: dict[str, "Document"]) -> list["Citation"]:
    """The citations with one per paragraph: the first (best) of each paragraph of each document kept."""
    seen, out = set(), []
    for c in citations:
        doc = documents.get(c.doc_id)
        key = (c.doc_id, doc.paragraph_at(c.start) if doc is not None else c.start)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _plain(text: str) -> str:
    """The reply's plain text, carried in an attribute (no line breaks reach the chat's Markdown) for
    the copy button (``static/open.js``): the same text "Export" saves for this turn."""
    return f'<span class="qa-plain" hidden title="{_attr(text).replace(chr(10), "&#10;")}"></span>' if text else ""


def render_searched(answer: "Answer") -> str:
    """"Searched for: ..." when the search used more than the question (a follow-up), else nothing."""
    if not answer.searched:
        return ""
    return (f'<p class="qa-searched" title="A follow-up: searched with the earlier questions\' key terms, the '
            f'previous answer\'s document favoured">Searched for: <q>{html.escape(answer.searched)}</q></p>')


def render_answer(answer: "Answer", threshold: float, documents: dict[str, "Document"],
                  bands: Sequence[dict] = (), plain: str = "", reliability: Sequence[dict] = ()) -> str:
    """The chat reply: bold short answer, confidence, highlighted evidence and numbered citations, one
    per paragraph; ``plain`` is what the copy button copies (see :mod:`qa.app.export`); ``reliability``:
    the reader's held-out answers by score range (:func:`worth`)."""
    if answer.abstained:
        return render_abstention(answer, threshold, documents, plain=plain)
    places = answer_places(answer)
    cites = []
    evidence_html = html.escape(answer.evidence)
    for n, c in enumerate(distinct_paragraphs(answer.citations, documents), start=1):
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
    label = confidence_label(answer.score, threshold, bands)
    markup = (
        '<div class="qa-reply">'
        f'{render_searched(answer)}'
        f'<p class="qa-short"><strong>{html.escape(answer.text or "")}</strong></p>'
        f'<blockquote class="qa-evidence">{evidence_html}</blockquote>'
        f'<p class="qa-cites">{" ".join(cites)}</p>'
        f'<details class="qa-conf qa-conf-{label.lower()}"><summary>{label} confidence · {likely_right(answer.score)}'
        f'</summary>{html.escape(band_meaning(label, bands))} {html.escape(worth(answer.score, reliability))}'
        f'The app answers from '
        f'{round(100 * threshold)}%{html.escape(read_by(answer))}.</details>'
        f"{_plain(plain)}</div>"
    )
    return _one_line(markup)


def render_abstention(answer: "Answer", threshold: float, documents: dict[str, "Document"], closest: int = 3,
                      plain: str = "") -> str:
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
    why = (f"The best candidate is {likely_right(answer.score)}, below the answer threshold of {round(100 * threshold)}%."
           if answer.alternatives else "The reader found no candidate answer.")
    listing = f'<p class="qa-muted">Closest passages:</p><ol class="qa-closest">{"".join(items)}</ol>' if items else ""
    return _one_line(
        f'<div class="qa-reply qa-abstain">{render_searched(answer)}<p class="qa-short">{ABSTAIN_TEXT}</p>'
        f'<p class="qa-muted">{html.escape(why)}</p>{listing}{_plain(plain)}</div>'
    )


def render_refusal(message: str, plain: str = "") -> str:
    """The reply when a question is refused or the server failed: the message, muted."""
    return f'<div class="qa-reply"><p class="qa-muted">{html.escape(message)}</p>{_plain(plain)}</div>'


def found_by(hit: "Hit", depth: int = FOUND_DEPTH) -> str:
    """Which search found a passage: ``"keyword"`` or ``"dense"`` when only that one ranked it within
    ``depth``, else ``"both"`` (both did, or only their fusion brought it up)."""
    dense = hit.dense_rank is not None and hit.dense_rank <= depth
    keyword = hit.keyword_rank is not None and hit.keyword_rank <= depth
    return "keyword" if keyword and not dense else "dense" if dense and not keyword else "both"


_FOUND_LABEL = {"keyword": "keyword match", "dense": "meaning match", "both": "keyword + meaning"}


def _found_title(hit: "Hit") -> str:
    ranks = [f"{name} search ranked it #{rank}" for name, rank in (("meaning (dense)", hit.dense_rank),
                                                                  ("keyword (BM25)", hit.keyword_rank)) if rank]
    return "Found by " + ("; ".join(ranks) if ranks else "the fused search") + "."


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
        body = _paragraph_breaks(highlight(p.text[s:e], marks))
        body = ("…" if s > 0 else "") + body + ("…" if e < len(p.text) else "")
        where = doc.location_at(inner[1] if inner else p.start)  # the answer's paragraph or page, else the passage's
        badge = '<span class="qa-badge">answer</span>' if inner else ""
        cards.append(
            f'<a class="qa-source{" qa-source-answer" if inner else ""}" title="Open the whole document" '
            f'href="{_attr(open_ref(p.doc_id, p.start, p.end, inner[1:] if inner else None))}">'
            f'<div class="qa-source-head"><span class="qa-rank" title="Rank {hit.rank} of the passages read">'
            f'{hit.rank}</span>'
            f'<span class="qa-source-title">{html.escape(doc.title)}</span>{badge}</div>'
            f'<div class="qa-source-meta">{html.escape(where)} · '
            f'<span class="qa-found qa-found-{found_by(hit)}" title="{_attr(_found_title(hit))}">'
            f'{_FOUND_LABEL[found_by(hit)]}</span></div>'
            f'<div class="qa-source-text">{body}</div></a>'
        )
    return f'<div class="qa-sources">{"".join(cards)}</div>'


def _paragraph_breaks(markup: str) -> str:
    """Escaped text with each paragraph break (a blank line) shown as a pilcrow, so a snippet that spans
    paragraphs does not run a heading into the sentence after it."""
    pilcrow = ' <span class="qa-para" title="paragraph break">¶</span> '
    return re.sub(r"[ \t]*\n[ \t]*\n\s*", pilcrow, markup.strip("\n"))


def render_document(
    doc: "Document", focus: tuple[int, int] | None = None, answer: tuple[int, int] | None = None
) -> str:
    """The whole document, escaped, with the cited span (``focus``) and the answer inside it highlighted.

    The focused span carries ``id="qa-focus"``; the viewer scrolls it into view.
    """
    n = len(doc.text)
    marks: list[Mark] = []
    if focus is not None:
        focus = max(0, min(focus[0], n)), max(0, min(focus[1], n))
        if focus[1] > focus[0]:
            marks.append((*focus, '<mark id="qa-focus" class="qa-focus">', "</mark>"))
    if answer is not None:
        marks.append((answer[0], answer[1], '<mark class="qa-hit">', "</mark>"))
    return (f'<div class="qa-doc">{document_head(doc, focus)}'
            f'<div class="qa-doc-text">{highlight(doc.text, marks)}</div></div>')


def document_head(doc: "Document", focus: tuple[int, int] | None = None, extra: str = "") -> str:
    """A document view's header: its title, its file, its length (``extra`` after it), and where the
    highlighted span is."""
    where = ""
    if focus is not None and focus[1] > focus[0]:
        where = f' · <span class="qa-doc-where">highlighted: {html.escape(doc.location_at(focus[0]))}</span>'
    return (f'<div class="qa-doc-head"><h3>{html.escape(doc.title)}</h3><div class="qa-doc-meta">'
            f'{html.escape(doc.file or doc.id)} · {len(doc.text):,} characters{extra}{where}</div></div>')


def render_header(title: str, n_docs: int, corpus_name: str = "") -> str:
    """The page's header: its title, and how many documents the chat answers from (re-rendered after
    each upload or delete)."""
    where = f" ({html.escape(corpus_name)})" if corpus_name else ""
    return (f"<h1>{html.escape(title)}</h1><p>Answers quoted word for word from {n_docs:,} indexed "
            f"document{'s' if n_docs != 1 else ''}{where}, each with a citation you can open.</p>")


def render_placeholder(documents: dict[str, "Document"], shown: int = PLACEHOLDER_TITLES) -> str:
    """The empty chat: what the app does, and the titles of the documents it answers from (their own
    titles first, then those made from a file name)."""
    titles = _titles(documents)
    if not titles:
        return PLACEHOLDER
    more = f'<li class="qa-muted">and {len(titles) - shown} more</li>' if len(titles) > shown else ""
    items = "".join(f"<li>{html.escape(t)}</li>" for t in titles[:shown])
    n = len(documents)
    return _one_line(
        f'<div class="qa-placeholder"><h3>Ask a question about {n} document{"s" if n != 1 else ""}</h3>'
        f'<ul class="qa-titles">{items}{more}</ul><p>Every answer is quoted word for word from a document, with a '
        "citation that opens it. Follow-up questions keep the conversation's context. When the documents don't "
        "say, neither does the app.</p></div>")


def question_placeholder(examples: Sequence[str], documents: dict[str, "Document"]) -> str:
    """The question box's hint: the first example question, else an invitation naming a document."""
    if examples:
        return f"e.g. {examples[0]}"
    titles = _titles(documents, distinct=False)
    if not titles:
        return "Ask a question about the documents"
    title = titles[0] if len(titles[0]) <= 60 else titles[0][:60].rsplit(" ", 1)[0] + "…"
    return f"Ask about {title}" + (f" or {len(titles) - 1} other document{'s' if len(titles) > 2 else ''}"
                                   if len(titles) > 1 else "")


def _titles(documents: dict[str, "Document"], distinct: bool = True) -> list[str]:
    """The documents' titles by name, those the documents state before those made from a file name
    ("Board minutes 2024" says less than "Primary care trusts")."""
    from qa.ingest.documents import readable_file_name

    named = [(d.title == readable_file_name(d.file or d.path or d.id), d.title.lower(), d.title)
             for d in documents.values()]
    titles = [t for _, _, t in sorted(named)]
    return list(dict.fromkeys(titles)) if distinct else titles


PLACEHOLDER = ('<div class="qa-placeholder"><h3>Ask a question about the documents</h3><p>Every answer is quoted '
               "word for word from a document, with a citation that opens it. When the documents don't say, neither "
               "does the app.</p></div>")
EMPTY_VIEWER = ('<div class="qa-empty">Click a citation such as <b>[1]</b>, or a source, to read the whole document '
                "here.</div>")
