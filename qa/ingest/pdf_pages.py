"""A PDF's real page as an image, and where given words sit on it, with pypdfium2.

The document's text comes from pypdf (:mod:`qa.ingest.documents`); pdfium reads the same page with its
own spacing and line breaks. Words are found on the page by comparing the two with whitespace removed
and Unicode folded (NFKC, case-folded, so ligatures and case agree); the character range found is
turned into pdfium's text rectangles, one per run of a line, as fractions of the rendered page.

Example:
    >>> view = render_page("report.pdf", 2, ["April 2000"])
    >>> view.width, view.boxes[0]  # pixels; (left, top, right, bottom) as fractions of the page
    (900, (0.118, 0.083, 0.27, 0.101))
"""

from __future__ import annotations

import io
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)

PAGE_WIDTH_PX = 900  # the rendered page's width; its height follows the page's shape
Box = tuple[float, float, float, float]  # left, top, right, bottom: fractions of the page, from its top left


@dataclass(frozen=True)
class PageView:
    """One rendered page: a PNG, its size in pixels, and the boxes of each text asked for (in order;
    an empty tuple for a text not found on the page)."""

    png: bytes
    width: int
    height: int
    page: int
    pages: int
    boxes: tuple[tuple[Box, ...], ...]


def _fold(text: str) -> list[tuple[str, int]]:
    """``text`` NFKC-normalised and case-folded, whitespace dropped, each character with the index of
    the character of ``text`` it came from."""
    out = []
    for i, ch in enumerate(text):
        for folded in unicodedata.normalize("NFKC", ch).casefold():
            if not folded.isspace():
                out.append((folded, i))
    return out


def find_on_page(page_chars: str, wanted: str, near: float = 0.0) -> tuple[int, int] | None:
    """Where ``wanted`` occurs in ``page_chars``, ignoring whitespace, case and ligatures.

    Args:
        page_chars: the page's characters, one per pdfium character index.
        wanted: the words to find (from the document's extracted text).
        near: where on the page (0 top .. 1 bottom, as a share of its characters) the words are
            expected; the occurrence closest to it wins.

    Returns:
        ``(first, last)`` pdfium character indices, inclusive, or ``None`` when not found.
    """
    page = _fold(page_chars)
    target = "".join(c for c, _ in _fold(wanted))
    if not target or not page:
        return None
    flat = "".join(c for c, _ in page)
    starts, at = [], flat.find(target)
    while at != -1:
        starts.append(at)
        at = flat.find(target, at + 1)
    if not starts:
        return None
    best = min(starts, key=lambda s: abs(s / len(flat) - near))
    return page[best][1], page[best + len(target) - 1][1]


def render_page(path: str | Path, page: int, texts: Sequence[str] = (), near: Sequence[float] = (),
                width_px: int = PAGE_WIDTH_PX) -> PageView:
    """Page ``page`` (1-based) of the PDF at ``path`` as a PNG ``width_px`` wide, with the boxes of ``texts``.

    Args:
        path: the PDF file.
        page: the page number, from 1.
        texts: words to locate on the page (e.g. the cited sentence, the answer).
        near: for each text, where on the page it is expected (see :func:`find_on_page`); 0 by default.
        width_px: the image's width in pixels.

    Raises:
        ValueError: no such page, or not a PDF pdfium can open (``pypdfium2.PdfiumError`` is one).
        OSError: the file can't be read.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument(Path(path).read_bytes())
    try:
        if not 1 <= page <= len(pdf):
            raise ValueError(f"page {page} is not in {path} ({len(pdf)} pages)")
        sheet = pdf[page - 1]
        left, bottom, right, top = sheet.get_cropbox()
        size_x, size_y = right - left, top - bottom
        image = sheet.render(scale=width_px / size_x).to_pil()
        textpage = sheet.get_textpage()
        count = textpage.count_chars()
        chars = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage, i) or 32) for i in range(count))
        boxes = []
        for k, wanted in enumerate(texts):
            found = find_on_page(chars, wanted, near[k] if k < len(near) else 0.0)
            if found is None:
                logger.info("%r not found on page %d of %s", wanted[:60], page, path)
                boxes.append(())
                continue
            first, last = found
            rects = [textpage.get_rect(j) for j in range(textpage.count_rects(first, last - first + 1))]
            boxes.append(tuple((round((l - left) / size_x, 5), round((top - t) / size_y, 5),
                                round((r - left) / size_x, 5), round((top - b) / size_y, 5))
                               for l, b, r, t in rects))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return PageView(buffer.getvalue(), image.width, image.height, page, len(pdf), tuple(boxes))
    finally:
        pdf.close()
