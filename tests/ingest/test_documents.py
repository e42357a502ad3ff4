"""Loading a folder of .txt, .md, .html and .pdf files into Documents."""

from __future__ import annotations

import logging

import pytest
from helpers.corpus import minimal_pdf

from qa.ingest.documents import DocumentError, load_document, load_documents

HTML_PAGE = """<!DOCTYPE html>
<html>
<head><title>Clinic opening hours</title>
<style>body { color: red; } .secret { display: none }</style>
<script>var trackingCode = "do-not-index";</script>
</head>
<body>
<h1>Opening hours of the clinic</h1>
<p>The clinic opens at eight in the morning.</p>
<script type="text/javascript">alert("popup text");</script>
<noscript>Please enable JavaScript</noscript>
<ul><li>Monday to Friday</li><li>Saturday mornings</li></ul>
</body>
</html>
"""


def test_loads_folder_recursively_with_all_formats(make_corpus):
    folder = make_corpus({
        "notes.txt": "Plain notes\n\nThe meeting is on Tuesday.\n",
        "guides/setup.md": "# Setup guide\n\nInstall the package first.\n",
        "guides/web/page.html": HTML_PAGE,
        "reports/2024/annual.pdf": minimal_pdf(["Annual report of the clinic.", "Second page: finances."]),
    })
    docs = load_documents(folder)
    assert [d.id for d in docs] == ["guides/setup", "guides/web/page", "notes", "reports/2024/annual"]
    by_id = {d.id: d for d in docs}
    assert by_id["notes"].text == "Plain notes\n\nThe meeting is on Tuesday.\n"
    assert by_id["guides/setup"].title == "Setup guide"
    assert by_id["guides/web/page"].path == str(folder / "guides/web/page.html")


def test_html_keeps_visible_text_only(make_corpus):
    doc = load_documents(make_corpus({"page.html": HTML_PAGE}))[0]
    assert "The clinic opens at eight in the morning." in doc.text
    assert "Monday to Friday" in doc.text and "Saturday mornings" in doc.text
    for hidden in ("trackingCode", "do-not-index", "popup text", "color: red", "display: none", "<p>", "<li>"):
        assert hidden not in doc.text
    assert doc.title in ("Opening hours of the clinic", "Clinic opening hours")


def test_html_inline_markup_does_not_split_sentences(make_corpus):
    # A sentence with <b>, <a> and <em> inside must stay one sentence of the document text: otherwise
    # the chunker sees three paragraphs and the reader cannot quote "open from 8 am to 6 pm" whole.
    page = '<html><body><p>We are <b>open</b> from <em>8 am</em> to 6 pm, see <a href="/x">the rota</a>.</p></body></html>'
    doc = load_documents(make_corpus({"inline.html": page}))[0]
    assert "We are open from 8 am to 6 pm, see the rota." in doc.text


def test_pdf_pages_and_page_numbers(make_corpus):
    folder = make_corpus({"leaflet.pdf": minimal_pdf([
        "Vaccination leaflet for patients.",
        "The flu vaccine is offered every autumn.",
        "Ask your pharmacist about side effects.",
    ])})
    doc = load_documents(folder)[0]
    assert doc.id == "leaflet"
    assert len(doc.pages) == 3
    for number, phrase in enumerate(
        ["Vaccination leaflet", "The flu vaccine is offered every autumn.", "Ask your pharmacist"], start=1
    ):
        start = doc.text.index(phrase)
        assert doc.page_at(start) == number
        assert doc.page_at(start + len(phrase) - 1) == number
    # Page starts are offsets into the text: each page's text begins there.
    for start, number in doc.pages:
        assert doc.page_at(start) == number
    # Its only first line is a sentence, and it has no title metadata: the file name names it.
    assert doc.title == "Leaflet"


def test_unpaginated_documents_have_no_page(make_corpus):
    doc = load_documents(make_corpus({"a.txt": "Some text about cats.\n"}))[0]
    assert doc.pages == ()
    assert doc.page_at(3) is None


def test_ids_are_relative_paths_without_extension(make_corpus):
    folder = make_corpus({"a/b/c.txt": "Deep file text.", "top.md": "Top file text."})
    assert [d.id for d in load_documents(folder)] == ["a/b/c", "top"]


def test_files_sharing_a_stem_keep_distinct_ids(make_corpus):
    folder = make_corpus({"report.txt": "Text version.", "report.md": "Markdown version."})
    ids = [d.id for d in load_documents(folder)]
    assert len(set(ids)) == 2


def test_hidden_and_unsupported_files_are_ignored(make_corpus):
    folder = make_corpus({"keep.txt": "Kept text.", ".hidden/secret.txt": "Hidden.", "image.png": b"\x89PNG\r\n\x1a\n"})
    assert [d.id for d in load_documents(folder)] == ["keep"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("binary.txt", b"GIF89a\x00\x01\x00\x00\xff\xfe binary junk"),
        ("latin1.txt", "Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1")),  # not UTF-8
        ("empty.md", b""),
        ("blank.txt", b"  \n\n\t \n"),
        ("scan.pdf", minimal_pdf([""])),  # a PDF page without text, like a scanned image
        ("broken.pdf", b"%PDF-1.4 not really a PDF"),
    ],
)
def test_bad_files_are_skipped_with_a_warning_naming_them(make_corpus, caplog, name, content):
    folder = make_corpus({"good.txt": "A good document about bread.", name: content})
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        docs = load_documents(folder)
    assert [d.id for d in docs] == ["good"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "qa.ingest.documents"]
    assert len(warnings) == 1
    assert name in warnings[0]


def test_utf8_bom_is_dropped(make_corpus):
    doc = load_documents(make_corpus({"bom.txt": "\ufeffTitle line\n\nBody.".encode("utf-8")}))[0]
    assert doc.text.startswith("Title line")


def test_empty_folder_raises_document_error(tmp_path):
    with pytest.raises(DocumentError, match="No loadable documents"):
        load_documents(tmp_path)


def test_folder_of_only_unloadable_files_raises_document_error(make_corpus):
    folder = make_corpus({"empty.txt": "", "photo.jpg": b"\xff\xd8\xff"})
    with pytest.raises(DocumentError) as err:
        load_documents(folder)
    assert str(folder) in str(err.value)
    assert ".txt" in str(err.value)  # says which files it expected


def test_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_documents(tmp_path / "nope")


def test_a_file_is_not_a_folder(tmp_path):
    path = tmp_path / "single.txt"
    path.write_text("text", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        load_documents(path)


def test_load_document_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError):
        load_document(path)


# The real corpus ---------------------------------------------------------------------------------


def test_seed_documents_load_with_their_titles(seeds_dir):
    docs = {d.id: d for d in load_documents(seeds_dir)}
    assert sorted(docs) == sorted(p.stem for p in seeds_dir.glob("*.txt"))
    # 001 opens with a boilerplate line ("This site is intended for health professionals only").
    assert docs["001_4490684fa547a1ab"].title == "General practice reform and the future of primary care trusts"
    # 002 has a Markdown heading; the title is the whole heading, not a cut-down one.
    heading = next(
        line[2:].strip() for line in (seeds_dir / "002_2ff8939a37842cf6.txt").read_text(encoding="utf-8").splitlines()
        if line.startswith("# ")
    )
    assert heading.startswith("The long term importance of English primary care groups")
    assert docs["002_2ff8939a37842cf6"].title == heading
    for doc in docs.values():
        assert doc.title and "\n" not in doc.title


def test_seed_text_is_the_file_text_verbatim(seeds_dir):
    # Citations quote document.text, so it must be exactly what the file says (offsets are kept).
    for doc in load_documents(seeds_dir):
        assert doc.text == (seeds_dir / f"{doc.id}.txt").read_bytes().decode("utf-8-sig")
