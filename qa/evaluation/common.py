"""Constants and small helpers shared by the evaluation modules (runner, benchmarks, report).

This module imports nothing from :mod:`qa.evaluation`, so every other module of the package can
import it without a cycle.
"""

from __future__ import annotations

import math
from typing import Any, Iterable


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


def reading_depth(qa: Any, k: int | None) -> int:
    """``k``, or when ``None`` how many passages ``qa`` reads by default (``qa.top_k``: what its reader's
    calibration was fitted on)."""
    if k is not None:
        return k
    from qa.answering.pipeline import DEFAULT_TOP_K

    return int(getattr(qa, "top_k", DEFAULT_TOP_K))


def mean_of(values: Iterable[float]) -> float | None:
    """The mean, or ``None`` for no values."""
    values = list(values)
    return sum(values) / len(values) if values else None


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``-`` for ``None`` or NaN."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def candidate_right(record: Record) -> bool:
    """Whether a question's best candidate answer is right (F1 >= 0.5; never for an unanswerable one)."""
    return bool(record["answers"]) and (record["candidate"]["f1"] or 0.0) >= RIGHT_F1


def candidate_rows(scored: Any) -> list[dict]:
    """Every candidate answer of a :class:`~qa.answering.pipeline.Scored` answer with its features, as a run
    records them (``qa eval fit-calibrator`` fits on these, so a calibrator can learn to choose among them)."""
    return [{"text": span.text, "features": features}
            for span, features in zip(scored.answer.alternatives, scored.features)]
