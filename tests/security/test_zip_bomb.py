"""A .docx zip bomb is refused from the archive's directory, before anything is unpacked.

The bomb is made by the test (benchmarks.hostile.docx_bomb: about 18.7 KB on disk, 14 MB of XML
inside). Its refusal's time and memory are measured by ``python -m benchmarks.hardening zip-bomb``,
not here.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from helpers.corpus import make_docx

from benchmarks.hostile import docx_bomb
from qa.app.uploads import InvalidUpload, check_upload
from qa.ingest.archive import ArchiveError, ArchiveLimits, check_archive
from qa.ingest.documents import DocumentError, load_document, load_documents


@pytest.fixture
def bomb(tmp_path):
    return docx_bomb(tmp_path / "minutes.docx")


def test_the_bomb_is_small_on_disk_and_large_inside(bomb):
    """What the other tests refuse is a real bomb: under 20 KB that unpacks to over 14 MB."""
    unpacked = sum(i.file_size for i in zipfile.ZipFile(bomb).infolist())
    assert bomb.stat().st_size < 20_000 and unpacked > 14_000_000


def test_a_real_word_document_passes(tmp_path):
    data = make_docx(["The board met on Tuesday."] * 50, heading="Minutes", table=[["a", "b"]])
    assert "word/document.xml" in check_archive(data)


def test_the_bomb_is_refused_as_a_zip_bomb(bomb):
    with pytest.raises(ArchiveError, match="looks like a zip bomb"):
        check_archive(bomb.read_bytes())


def test_the_bomb_is_refused_on_upload_with_one_line_naming_it(bomb):
    with pytest.raises(InvalidUpload) as refused:
        check_upload("minutes.docx", bomb.read_bytes())
    message = str(refused.value)
    assert message.startswith("minutes.docx") and "zip bomb" in message and "\n" not in message


def test_the_bomb_in_a_folder_is_skipped_and_the_rest_indexed(bomb, tmp_path):
    """qa index and the server's re-scan read a .docx through the same check."""
    (bomb.parent / "notes.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
    with pytest.raises(DocumentError, match="zip bomb"):
        load_document(bomb)
    assert [d.id for d in load_documents(bomb.parent)] == ["notes"]


def test_too_many_unpacked_bytes_are_refused_however_they_pack(tmp_path):
    data = make_docx(["Plain text that packs as text does."] * 200)
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    with pytest.raises(ArchiveError, match="would unpack to"):
        check_archive(data, ArchiveLimits(max_unpacked_bytes=unpacked - 1))
    assert check_archive(data, ArchiveLimits(max_unpacked_bytes=unpacked))


def _archive_of(members: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(members):
            archive.writestr(f"p{i}.xml", b"")
    return out.getvalue()


def test_too_many_parts_are_refused_from_the_end_record(tmp_path):
    with pytest.raises(ArchiveError, match="holds 11 parts, more than the 10"):
        check_archive(_archive_of(11), ArchiveLimits(max_members=10))


def test_a_directory_larger_than_its_count_says_is_refused():
    """zipfile reads every entry of the directory whatever the count says: a forged count of 1 does not help."""
    data = bytearray(_archive_of(40))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # this disk's count and the total count
    with pytest.raises(ArchiveError, match="directory of parts"):
        check_archive(bytes(data), ArchiveLimits(max_members=1))


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not a zip", b"plain text"])
def test_what_is_not_a_zip_is_said_so(data):
    with pytest.raises(ArchiveError, match="not a zip archive|not a readable zip"):
        check_archive(data)
