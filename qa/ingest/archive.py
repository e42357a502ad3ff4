"""Checks on a zip archive (a .docx) from its directory alone, before any member is unpacked.

A .docx is a zip of XML parts. A small one can unpack to gigabytes (a "zip bomb": deflate packs a
repeated paragraph a thousand times over), and parsing that would take minutes and gigabytes, so
an archive is refused when its central directory says it would unpack to too much:

- more than :data:`MAX_MEMBERS` members (counted from the end record, before the directory is read);
- more than :data:`MAX_UNPACKED_BYTES` bytes unpacked in all;
- a member of over :data:`RATIO_FLOOR_BYTES` unpacked that is more than :data:`MAX_RATIO` times its
  packed size (Word's own parts pack 5 to 30 times; a bomb's, hundreds of times).

The sizes the directory declares bound what Python's :mod:`zipfile` (and so python-docx) will ever
unpack: a member is read up to its declared size and a longer one fails its CRC check.

Example:
    >>> names = check_archive(Path("minutes.docx").read_bytes())
    >>> "word/document.xml" in names
    True
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

MAX_MEMBERS = 5_000  # a Word document has tens of parts; hundreds with many images
MAX_UNPACKED_BYTES = 100 * 2**20  # python-docx holds every part in memory, and lxml a tree of the XML
MAX_RATIO = 100  # unpacked / packed bytes of one member
RATIO_FLOOR_BYTES = 2**20  # members smaller than this unpack to little whatever their ratio

_END_RECORD = b"PK\x05\x06"
_END_SIZE = 22
_MAX_COMMENT = 0xFFFF
_MAX_ENTRY_BYTES = 46 + 1024  # a directory entry: its fixed fields, and room for a long name and extras


class ArchiveError(ValueError):
    """The archive is refused: its message says why, in words for the person who sent it."""


class NotAnArchive(ArchiveError):
    """The bytes are not a zip archive at all."""


@dataclass(frozen=True)
class ArchiveLimits:
    """How much a zip archive may hold (see the module docstring)."""

    max_members: int = MAX_MEMBERS
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES
    max_ratio: float = MAX_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES


def _end_record(data: bytes) -> tuple[int, int] | None:
    """(members, directory bytes) as the end record declares them, or ``None`` when there is none."""
    start = max(0, len(data) - _END_SIZE - _MAX_COMMENT)
    at = data.rfind(_END_RECORD, start)
    if at < 0 or at + _END_SIZE > len(data):
        return None
    members, size = struct.unpack_from("<HI", data, at + 10)  # members in the whole directory, its size
    return members, size


def _megabytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def check_archive(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    """The member names of the zip archive ``data``, when what it would unpack is within ``limits``.

    Only the end record and the central directory are read; no member is unpacked.

    Raises:
        ArchiveError: not a zip archive, or one that unpacks to more than ``limits`` allow.
    """
    end = _end_record(data)
    if end is None:
        raise NotAnArchive("it is not a zip archive")
    count, directory = end
    # 0xFFFF means "see the zip64 record": far more parts than any Word document has. The directory's
    # size is checked too, as zipfile reads every entry it holds, whatever the count says.
    if count > limits.max_members or count == 0xFFFF:
        shown = "over 65,535" if count == 0xFFFF else f"{count:,}"
        raise ArchiveError(f"it holds {shown} parts, more than the {limits.max_members:,} a document may have")
    if directory > limits.max_members * _MAX_ENTRY_BYTES:
        raise ArchiveError(f"its directory of parts is {_megabytes(directory)}, more than "
                           f"{limits.max_members:,} parts need")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as err:
        raise NotAnArchive(f"it is not a readable zip archive ({err})") from None
    if len(members) > limits.max_members:
        raise ArchiveError(f"it holds {len(members):,} parts, more than the {limits.max_members:,} a document "
                           "may have")
    unpacked = sum(m.file_size for m in members)
    if unpacked > limits.max_unpacked_bytes:
        raise ArchiveError(f"it would unpack to {_megabytes(unpacked)}, over the "
                           f"{_megabytes(limits.max_unpacked_bytes)} limit")
    for m in members:
        if m.file_size > limits.ratio_floor_bytes and m.file_size > limits.max_ratio * max(1, m.compress_size):
            raise ArchiveError(f"its part {m.filename[:80]} would unpack {m.file_size / max(1, m.compress_size):,.0f} "
                               f"times over ({_megabytes(m.file_size)} from {m.compress_size:,} bytes), more than "
                               f"the {limits.max_ratio:,.0f} times a document's text packs: it looks like a zip bomb")
    return [m.filename for m in members]
