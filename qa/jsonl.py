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


def dumps_line(row: object) -> str:
    """One record as a line (ending in ``\\n``)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line number, record)`` of each non-blank line, split on ``\\n`` only.

    Raises:
        json.JSONDecodeError: a line that is not JSON (its number is in the message's ``lineno``
            of the caller; see :func:`read_jsonl`).
    """
    with Path(path).open(encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):  # file iteration splits on "\n" only
            if line.strip():
                yield number, json.loads(line)


def read_jsonl(path: str | Path) -> list:
    """Every record of a JSON-lines file."""
    return [row for _, row in iter_jsonl(path)]


def write_jsonl(path: str | Path, rows: Iterable[object]) -> None:
    """Write ``rows``, one JSON object per line (no atomicity: write into a temporary folder first)."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(dumps_line(row))
