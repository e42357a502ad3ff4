"""JSON lines read and written one way everywhere.

Records are separated by ``\\n`` only. ``str.splitlines`` also splits on U+2028, U+2029, U+0085 and
other separators that JSON writes unescaped with ``ensure_ascii=False`` (they are common in text
pasted from PDF or Word), so it must never be used to read these files.

Example:
    >>> write_jsonl(path, [{"text": "a\\u2028b"}])
    >>> read_jsonl(path)
    [{'text': 'a\\u2028b'}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from qa.errors import InvalidInput


def dumps_line(row: object) -> str:
    """One record as a line (ending in ``\\n``)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file split on ``\\n`` only, without the line ending
    (``\\r\\n`` included)."""
    with Path(path).open(encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):  # file iteration splits on "\n" only
            yield number, line.rstrip("\r\n")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line number, record)`` of each non-blank line, split on ``\\n`` only.

    Raises:
        InvalidInput: a line is not JSON; the message names the file and the line.
    """
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise InvalidInput(f"{path}, line {number}: not JSON ({err})") from err


def read_jsonl(path: str | Path) -> list:
    """Every record of a JSON-lines file."""
    return [row for _, row in iter_jsonl(path)]


def write_jsonl(path: str | Path, rows: Iterable[object]) -> None:
    """Write ``rows``, one JSON object per line (no atomicity: write into a temporary folder first)."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(dumps_line(row))
