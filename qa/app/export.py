"""The conversation as plain text (Markdown): what "Export" saves and what a reply's copy button copies.

Each answered turn becomes the question, the short answer, and every distinct cited paragraph's quote
(verbatim from the document) with its title and place; a refusal says so and names the closest
passages. No HTML: document text is quoted as it is, never escaped or marked up.

Example:
    >>> print(answer_markdown(qa.ask("When do primary care trusts go live?"), qa.documents))
    **Q:** When do primary care trusts go live?
    <BLANKLINE>
    **A:** April 2000 (High confidence, 0.93)
    ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from qa.app.render import ABSTAIN_TEXT, confidence_label, distinct_paragraphs, likely_right

if TYPE_CHECKING:
    from qa.types import Answer, Document

SNIPPET_CHARS = 200  # characters of a closest passage named under a refusal


def _quoted(text: str) -> str:
    """``text`` as a Markdown block quote, line by line (blank lines kept inside the quote)."""
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def _place(title: str, location: str) -> str:
    return f"{title}, {location}" if location else title


def answer_markdown(answer: "Answer", documents: dict[str, "Document"], threshold: float | None = None,
                    bands: Sequence[dict] = ()) -> str:
    """One turn: the question, then the answer with its quotes and citations, or the refusal.

    Args:
        answer: the pipeline's reply.
        documents: the index's documents (for places in refusals and paragraph grouping).
        threshold: the answer threshold the reply was made with (for the confidence label and refusals).
        bands: the reader's confidence bands (see :func:`qa.app.render.confidence_label`).
    """
    lines = [f"**Q:** {answer.question}", ""]
    if answer.searched:
        lines += [f"Searched for: {answer.searched}", ""]
    if answer.abstained:
        lines.append(f"**A:** {ABSTAIN_TEXT}")
        if threshold is not None and answer.alternatives:
            lines[-1] += (f" (The best candidate is {likely_right(answer.score)}, below the answer threshold of "
                          f"{round(100 * threshold)}%.)")
        closest = []
        for n, hit in enumerate(answer.hits[:3], start=1):
            p = hit.passage
            doc = documents.get(p.doc_id)
            snippet = " ".join(p.text.split())
            if len(snippet) > SNIPPET_CHARS:
                snippet = snippet[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
            title = doc.title if doc is not None else p.doc_id
            where = doc.location_at(p.start) if doc is not None else ""
            closest.append(f"{n}. {_place(title, where)}: \"{snippet}\"")
        if closest:
            lines += ["", "Closest passages:", *closest]
        return "\n".join(lines)
    confidence = ""
    if threshold is not None:
        confidence = f" ({confidence_label(answer.score, threshold, bands)} confidence, {likely_right(answer.score)})"
    lines.append(f"**A:** {answer.text}{confidence}")
    for n, c in enumerate(distinct_paragraphs(answer.citations, documents), start=1):
        lines += ["", _quoted(c.quote), f"— [{n}] {_place(c.title, c.location)}"]
    return "\n".join(lines)


def refusal_markdown(question: str, message: str) -> str:
    """A turn the app could not answer (an error said in the chat)."""
    return f"**Q:** {question}\n\n**A:** {message}"


def conversation_markdown(turns: Sequence[str], title: str, exported_at: str) -> str:
    """The whole conversation: a heading, when it was exported, then each turn's text, oldest first.

    Args:
        turns: each turn's text (:func:`answer_markdown` or :func:`refusal_markdown`).
        title: the app's title.
        exported_at: the date and time to state.
    """
    count = f"{len(turns)} question{'s' if len(turns) != 1 else ''}"
    head = f"# {title}: conversation\n\nExported {exported_at} · {count}"
    return "\n\n---\n\n".join([head, *turns]) + "\n"
