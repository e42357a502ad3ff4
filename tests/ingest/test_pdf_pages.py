"""A PDF page rendered with pypdfium2, and the words of a citation located on it."""

from __future__ import annotations

import io

import pytest
from helpers.corpus import minimal_pdf

from qa.ingest.pdf_pages import find_on_page, render_page

# minimal_pdf draws each page's line in 12 pt Helvetica from x = 72 pt, baseline y = 720 pt, on a
# 612 x 792 pt page: the line's left edge is 72 / 612 = 0.118 of the width, its top a little under
# (792 - 720 - 12) / 792 = 0.076 of the height, its bottom near (792 - 720) / 792 = 0.091 (plus descenders).
PAGES = ["Cover page of the ferry report.", "The ferry leaves Oban at nine and returns by noon."]


@pytest.fixture
def pdf_file(tmp_path):
    path = tmp_path / "ferry.pdf"
    path.write_bytes(minimal_pdf(PAGES))
    return path


def _ink(png: bytes, box: tuple[float, float, float, float]) -> int:
    """Dark pixels inside a box given as fractions of the image."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    w, h = image.size
    crop = image.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w) + 1, int(box[3] * h) + 1))
    return sum(crop.histogram()[:128])


def test_the_page_is_rendered_and_the_words_boxed_where_they_are_drawn(pdf_file):
    view = render_page(pdf_file, 2, ["The ferry leaves Oban", "nine"], width_px=612)
    assert (view.page, view.pages, view.width, view.height) == (2, 2, 612, 792)
    (first,), (second,) = view.boxes
    left, top, right, bottom = first
    assert left == pytest.approx(72 / 612, abs=0.01)
    assert 0.06 < top < 0.09 and 0.085 < bottom < 0.1
    assert second[0] > right  # "nine" comes later on the same line
    assert second[1] == pytest.approx(top, abs=0.01)
    assert _ink(view.png, first) > 100 and _ink(view.png, second) > 20
    assert _ink(view.png, (0.1, 0.3, 0.9, 0.9)) == 0  # nothing drawn below the line


def test_words_are_matched_across_spacing_case_and_ligatures():
    page = "Primary  care\ntrusts go live in April 2000. The ﬁnal report"
    first, last = find_on_page(page, "care trusts go LIVE")
    assert page[first:last + 1] == "care\ntrusts go live"
    first, last = find_on_page(page, "final report")
    assert page[first:last + 1] == "ﬁnal report"
    assert find_on_page(page, "not on the page") is None


def test_the_occurrence_nearest_where_it_is_expected_wins():
    page = "April 2000 first. " + "x" * 100 + " April 2000 second."
    assert find_on_page(page, "April 2000", near=0.0)[0] == 0
    assert find_on_page(page, "April 2000", near=0.95)[0] == page.rindex("April 2000")


def test_words_missing_from_the_page_get_no_box(pdf_file):
    assert render_page(pdf_file, 1, ["The ferry leaves"]).boxes == ((),)


def test_a_page_out_of_range_is_refused(pdf_file):
    with pytest.raises(ValueError, match="page 3"):
        render_page(pdf_file, 3)
