"""Constants and small helpers shared by the evaluation modules (runner, benchmarks, report).

This module imports nothing from :mod:`qa.evaluation`, so every other module of the package can
import it without a cycle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

from qa.errors import InvalidInput

HIT_KS = (1, 3, 5, 10)
RIGHT_F1 = 0.5  # an answer with F1 >= 0.5 counts as right in the error analysis and the plots

Record = dict[str, Any]


def get_path(m: dict | None, *path: str) -> Any:
    """``m[path[0]][path[1]]...``, or ``None`` where a level is missing or ``None``."""
    for key in path:
        if m is None:
            return None
        m = m.get(key)
    return m


def mean_of(values: Iterable[float]) -> float | None:
    """The mean, or ``None`` for no values."""
    values = list(values)
    return sum(values) / len(values) if values else None


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``-`` for ``None`` or NaN."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file split on ``"\\n"`` only (see :mod:`qa.jsonl`), without
    the line ending (``"\\r\\n"`` included)."""
    with Path(path).open(encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            yield number, line.rstrip("\r\n")


def jsonl_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, record)`` of each non-blank line of a JSON-lines file, split on ``"\\n"`` only.

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


def candidate_right(record: Record) -> bool:
    """Whether a question's best candidate answer is right (F1 >= 0.5; never for an unanswerable one)."""
    return bool(record["answers"]) and (record["candidate"]["f1"] or 0.0) >= RIGHT_F1
