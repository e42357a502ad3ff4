"""The viewer: Markdown formatted with its highlights, a PDF's page image with the citation boxed."""

from __future__ import annotations

import base64
import io
import re

import pytest
from bs4 import BeautifulSoup
from helpers.corpus import minimal_pdf

from qa.app.viewer import Viewer, markdown_html
from qa.ingest.documents import load_document

MD = "# Ferry times\n\nThe ferry **leaves** at nine.\nIt returns by noon.\n\n- Monday\n- Friday\n"


def _span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


def _marked(soup, cls: str) -> str:
    return "".join(m.get_text() for m in soup.select(f"mark.{cls}"))


def test_markdown_is_formatted_with_the_cited_sentence_and_answer_marked():
    sentence = "The ferry **leaves** at nine."
    soup = BeautifulSoup(markdown_html(MD, _span(MD, sentence), _span(MD, "nine")), "html.parser")
    assert soup.h1.get_text() == "Ferry times" and soup.strong.get_text() == "leaves"
    assert [li.get_text() for li in soup.select("ul li")] == ["Monday", "Friday"]
    assert _marked(soup, "qa-focus") == "The ferry leaves at nine."  # the sentence, its ** markup gone
    assert _marked(soup, "qa-hit") == "nine"
    assert len(soup.select("#qa-focus")) == 1 and soup.select_one("#qa-focus").get_text() == "The ferry "
    assert soup.select_one("mark.qa-focus mark.qa-hit").get_text() == "nine"  # the answer inside the sentence


def test_a_highlight_at_a_heading_or_list_item_keeps_its_block():
    soup = BeautifulSoup(markdown_html(MD, _span(MD, "# Ferry times")), "html.parser")
    assert soup.h1 is not None and soup.h1.select_one("mark#qa-focus").get_text() == "Ferry times"
    soup = BeautifulSoup(markdown_html(MD, _span(MD, "- Monday\n- Friday")), "html.parser")
    assert [li.get_text() for li in soup.select("li")] == ["Monday", "Friday"]
    assert _marked(soup, "qa-focus") == "MondayFriday"


def test_a_highlight_across_paragraphs_nests_validly():
    rendered = markdown_html(MD, _span(MD, "It returns by noon.\n\n- Monday"))
    # Every <mark> closes inside the element it opened in: no tag crosses another.
    stack = []
    for closing, name in re.findall(r"<(/?)(\w+)[^>]*>", rendered):
        if closing:
            assert stack and stack.pop() == name, rendered
        elif name not in ("br", "hr"):
            stack.append(name)
    soup = BeautifulSoup(rendered, "html.parser")
    assert _marked(soup, "qa-focus") == "It returns by noon.Monday"


def test_markdown_html_and_images_stay_inert():
    soup = BeautifulSoup(markdown_html("Hi <script>alert(1)</script> ![a chart](http://x/c.png) [site](http://x.org)"),
                         "html.parser")
    assert soup.find("script") is None and soup.find("img") is None
    assert "<script>alert(1)</script>" in soup.get_text() and "a chart" in soup.get_text()
    assert soup.a["rel"] == ["noopener", "noreferrer"] and soup.a["target"] == "_blank"


def test_the_viewer_formats_md_files_and_leaves_text_files_as_text(tmp_path):
    (tmp_path / "ferry.md").write_text(MD)
    (tmp_path / "ferry.txt").write_text(MD)
    viewer = Viewer(tmp_path)
    md = BeautifulSoup(viewer.render(load_document(tmp_path / "ferry.md", root=tmp_path)), "html.parser")
    txt = BeautifulSoup(viewer.render(load_document(tmp_path / "ferry.txt", root=tmp_path)), "html.parser")
    assert md.h1 is not None and md.select_one(".qa-doc-head h3").get_text() == "Ferry times"
    assert txt.select_one(".qa-doc-text h1") is None and "# Ferry times" in txt.select_one(".qa-doc-text").get_text()


@pytest.fixture
def pdf_doc(tmp_path):
    (tmp_path / "ferry.pdf").write_bytes(minimal_pdf(["Cover page.", "The ferry leaves Oban at nine."]))
    return load_document(tmp_path / "ferry.pdf", root=tmp_path)


def test_a_pdf_citation_shows_its_page_with_the_sentence_and_answer_boxed(tmp_path, pdf_doc):
    from PIL import Image

    sentence = _span(pdf_doc.text, "The ferry leaves Oban at nine.")
    soup = BeautifulSoup(Viewer(tmp_path).render(pdf_doc, sentence, _span(pdf_doc.text, "nine")), "html.parser")
    img = soup.select_one(".qa-page img")
    png = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).size[0] == pytest.approx(900, abs=1)
    assert soup.select_one(".qa-page figcaption").get_text().startswith("Page 2 of 2")
    (focus,), (hit,) = soup.select(".qa-page-focus"), soup.select(".qa-page-hit")
    left = float(re.search(r"left:([\d.]+)%", focus["style"]).group(1))
    assert left == pytest.approx(100 * 72 / 612, abs=1)  # minimal_pdf draws from x = 72 pt of 612
    assert float(re.search(r"left:([\d.]+)%", hit["style"]).group(1)) > left
    # The extracted text sits beside the page, with the same highlights.
    assert soup.select_one(".qa-doc-views .qa-doc-text mark#qa-focus").get_text() == "The ferry leaves Oban at nine."


def test_a_pdf_changed_since_indexing_shows_the_text_and_says_why(tmp_path, pdf_doc):
    (tmp_path / "ferry.pdf").write_bytes(minimal_pdf(["Another file altogether."]))
    soup = BeautifulSoup(Viewer(tmp_path).render(pdf_doc, (0, 5)), "html.parser")
    assert soup.select_one(".qa-page") is None
    assert "has changed since it was indexed" in soup.select_one(".qa-page-missing").get_text()
    assert soup.select_one(".qa-doc-text mark#qa-focus") is not None
