"""Document titles: what the file declares, a heading, a line that reads as a title, else the file name
(or, for a name of numbers and hashes, the first sentence); never a piece of a sentence."""

from __future__ import annotations

import io

import pytest
from helpers.corpus import minimal_pdf

from qa.ingest.documents import document_title, load_documents, readable_file_name


def _pdf_with_title(title: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf(["Some body text of the report."]))))
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_the_title_a_file_declares_comes_first(make_corpus):
    folder = make_corpus({
        "scan_0042.pdf": _pdf_with_title("Annual report of the clinic 2024"),
        "word.pdf": _pdf_with_title("Microsoft Word - draft_v3.docx"),  # a file name, not a title
        "page.html": "<html><head><title>Opening hours</title></head><body><p>We open at 8.</p></body></html>",
        "notes.md": "Intro line that is not a heading.\n\n# Budget notes\n\nThe budget is tight.\n",
    })
    titles = {d.id: d.title for d in load_documents(folder)}
    assert titles == {"scan_0042": "Annual report of the clinic 2024", "word": "Word",
                      "page": "Opening hours", "notes": "Budget notes"}


@pytest.mark.parametrize("text, expected", [
    ("primary care trusts\n\nA model of how trusts develop, explain two authors.\n", "Primary care trusts"),
    ("This site is intended for health professionals only\n\n\nGeneral practice reform\n\n1 September 2007\n\n"
     "Body text begins here and goes on.\n", "General practice reform"),
    # A one-word section label, a byline with a date, then the body: nothing reads as a title.
    ("FEEDBACK\n\nPublished: 02/06/2005, Volume II5\n\nSince their creation, doubts have lingered over PCTs' "
     "ability to manage acute trusts and other providers in an increasingly competitive market. But together, "
     "they are stronger.\n", "Gm 2005 report"),
    # A standfirst of two sentences is not a title.
    ("Pilot schemes have been slow to develop links. Nicola Walsh and colleagues report\n\nThe body.\n",
     "Gm 2005 report"),
])
def test_a_title_from_the_text_is_a_whole_line_that_reads_as_one(text, expected):
    assert document_title(text, "gm_2005-report.txt") == expected


def test_the_bundled_titles_are_never_sentence_fragments(seeds_dir):
    docs = {d.id: d for d in load_documents(seeds_dir)}
    assert docs["000_514f065cc880a116"].title == "Primary care trusts"
    # Named by hashes, with no line that reads as a title: the first sentence of the first line (two
    # sentences), and of the standfirst after "FEEDBACK" and a date.
    assert docs["003_209851d2c1bf9842"].title == ("Personal medical services pilot schemes have been slow to develop "
                                                  "links with key organisations")
    assert docs["004_474e51ade5268c1c"].title.startswith("Since their creation, doubts have lingered over PCTs'")
    for doc in docs.values():
        assert not doc.title.endswith(("…", ".", ",")), doc.title
        # A title taken from the text is a whole line of it, or the whole first sentence of one.
        lines = [line.strip().lstrip("# ").lower() for line in doc.text.splitlines()]
        assert doc.title.lower() in lines or any(line.startswith(doc.title.lower() + ". ") for line in lines), doc.title


@pytest.mark.parametrize("name, expected", [
    ("annual_report-2024.pdf", "Annual report 2024"), ("minutes.2023.03.md", "Minutes 2023 03"),
    ("Board Papers.docx", "Board Papers"), ("no_extension", "No extension"),
])
def test_file_names_made_readable(name, expected):
    assert readable_file_name(name) == expected
