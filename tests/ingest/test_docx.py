"""Word documents (.docx) load through python-docx: paragraphs and table rows in reading order."""

from __future__ import annotations

import io
import logging

import pytest
from helpers.corpus import make_docx

from qa.ingest.documents import DocumentError, load_document, load_documents


def test_a_docx_loads_its_paragraphs_and_tables_in_order(tmp_path):
    path = tmp_path / "minutes.docx"
    path.write_bytes(make_docx(["The board met on Tuesday.", "", "It approved the budget."],
                               heading="Board minutes", table=[["Item", "Cost"], ["Roof", "300"]]))
    doc = load_document(path)
    assert doc.text.split("\n\n") == ["Board minutes", "The board met on Tuesday.", "It approved the budget.",
                                      "Item | Cost", "Roof | 300"]
    assert doc.title == "Board minutes"  # the Heading 1 paragraph
    assert doc.location_at(doc.text.index("approved")) == "paragraph 3"


def test_the_core_title_property_names_the_document(tmp_path):
    path = tmp_path / "x.docx"
    path.write_bytes(make_docx(["Some body text here."], title="Annual review 2024", heading="Introduction"))
    assert load_document(path).title == "Annual review 2024"


def test_a_folder_with_a_docx_indexes_it_beside_the_other_types(make_corpus):
    folder = make_corpus({"a.txt": "Plain text.", "b.docx": make_docx(["Word text about ferries."])})
    docs = {d.id: d for d in load_documents(folder)}
    assert docs["b"].text == "Word text about ferries." and docs["b"].file == "b.docx"


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a real zip", b"plain text named docx", b""])
def test_a_broken_docx_is_skipped_with_a_warning_naming_it(make_corpus, caplog, content):
    folder = make_corpus({"good.txt": "Good.", "bad.docx": content})
    with caplog.at_level(logging.WARNING, logger="qa.ingest.documents"):
        assert [d.id for d in load_documents(folder)] == ["good"]
    assert any("bad.docx" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    with pytest.raises(DocumentError):
        load_document(folder / "bad.docx")


def without_core_properties(data: bytes) -> bytes:
    """``data`` (a .docx) without its core properties part (docProps/core.xml and its relationship), as
    some writers other than Word leave it."""
    import re
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            if info.filename == "docProps/core.xml":
                continue
            part = source.read(info)
            if info.filename == "_rels/.rels":
                part = re.sub(rb"<Relationship [^>]*core-properties[^>]*/>", b"", part)
            archive.writestr(info.filename, part)
    return out.getvalue()


def test_a_docx_without_a_title_property_is_titled_by_its_file_name(tmp_path):
    """python-docx makes up core properties titled "Word Document" when a file has none."""
    path = tmp_path / "board_minutes-2024.docx"
    data = without_core_properties(make_docx(["the board met. it approved the budget."]))
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(data))
    assert "docProps/core.xml" not in archive.namelist() and b"core-properties" not in archive.read("_rels/.rels")
    path.write_bytes(data)
    assert load_document(path).title == "Board minutes 2024"
