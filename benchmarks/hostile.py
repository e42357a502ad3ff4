"""Hostile inputs for the security tests and the hardening measurements, made on the spot (small on disk).

Example:
    >>> path = docx_bomb(Path("/tmp/bomb.docx"))
    >>> path.stat().st_size < 30_000
    True
"""

from __future__ import annotations

import zipfile
from pathlib import Path

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>')
_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
_TAIL = "</w:body></w:document>"


def docx_bomb(path: Path, unpacked_bytes: int = 14_300_000, paragraph: str = "a" * 8000) -> Path:
    """A minimal Word document whose text, ``paragraph`` repeated, unpacks to about ``unpacked_bytes``
    of XML from a few kilobytes on disk (deflate packs a repeated run about a thousand times over).

    The XML is streamed into the archive, so making it holds one paragraph in memory, not the whole.
    """
    block = f"<w:p><w:r><w:t>{paragraph}</w:t></w:r></w:p>".encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=False) as xml:
            xml.write(_HEAD.encode())
            for _ in range(max(1, unpacked_bytes // len(block))):
                xml.write(block)
            xml.write(_TAIL.encode())
    return path
