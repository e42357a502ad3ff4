"""Thumbs up/down from the chat, appended to a JSON-lines file that ``qa eval`` can read.

A row records what a person rated; it is a gold label only when they confirmed the answer or gave a
correction (``qa eval`` reads only those rows as labels).

Example:
    >>> log = FeedbackLog("feedback/feedback.jsonl")
    >>> log.append(FeedbackLog.record(qa.to_json(answer), "up"))
    >>> log.rows()[-1]["rating"]
    'up'
"""

from __future__ import annotations

import html
import logging
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from qa.errors import InvalidInput
from qa.jsonl import dumps_line, read_jsonl

try:
    import fcntl  # file locks, so several app processes can share one feedback file
except ImportError:  # Windows: the thread lock still serialises one process's appends
    fcntl = None

logger = logging.getLogger(__name__)

DEFAULT_FEEDBACK = Path("feedback") / "feedback.jsonl"
RATINGS = ("up", "down")


class FeedbackLog:
    """Feedback rows appended to ``path`` as JSON lines (:mod:`qa.jsonl`).

    Each row: ``{"id", "question", "answers", "doc_id", "kind": "feedback", "verdict", "rating", "answer",
    "abstained", "citations", "correction", "confirmed", "time"}``. ``rating`` (and, for older readers,
    ``verdict``) is ``"up"`` or ``"down"``; ``answer`` and ``citations`` are what the model showed
    (``answer`` is ``None`` and ``abstained`` true when it said the documents don't say). ``answers``
    and ``doc_id`` are a gold label only when the person confirmed the answer (``[answer]`` in the
    cited document) or corrected it (``[correction]``, document unknown); otherwise ``[]`` and ``None``.
    Appends are serialised by a lock (and ``flock`` where the platform has it, for several processes).
    """

    def __init__(self, path: str | Path = DEFAULT_FEEDBACK):
        self.path = Path(path)
        self._lock = threading.Lock()

    @staticmethod
    def record(payload: dict, rating: str, correction: str | None = None, confirmed: bool = False) -> dict:
        """The feedback row for one ``QA.to_json`` payload.

        Args:
            payload: what the app showed (the ``/ask`` object).
            rating: ``"up"`` or ``"down"``.
            correction: the right answer, when the person gave one.
            confirmed: the person confirmed the answer shown is right (not just a thumbs-up).

        Raises:
            InvalidInput: another rating, a correction that is not text, or a confirmation of an abstention.
        """
        if rating not in RATINGS:
            raise InvalidInput(f"A rating is 'up' or 'down', got {rating!r}.")
        if correction is not None and not isinstance(correction, str):
            raise InvalidInput(f"A correction is text, got {type(correction).__name__}.")
        correction = (correction or "").strip() or None
        answer = payload.get("answer")
        abstained = bool(payload.get("abstained")) or answer is None
        if confirmed and abstained:
            raise InvalidInput("The model abstained: there is nothing to confirm; give a correction instead.")
        citations = payload.get("citations") or []
        if correction is not None:
            answers, doc_id = [correction], None
        elif confirmed:
            answers, doc_id = [answer], citations[0]["doc_id"] if citations else None
        else:
            answers, doc_id = [], None
        return {
            "id": f"feedback-{uuid.uuid4().hex[:12]}",
            "question": payload["question"],
            "answers": answers,
            "doc_id": doc_id,
            "kind": "feedback",
            "verdict": rating,
            "rating": rating,
            "answer": answer,
            "abstained": abstained,
            "citations": citations,
            "correction": correction,
            "confirmed": bool(confirmed),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def append(self, row: dict) -> None:
        """Append one row (whole, even with several writers)."""
        line = dumps_line(row)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8", newline="\n") as f:
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                f.write(line)
                f.flush()
        logger.info("feedback %s on %r written to %s", row["rating"], row["question"][:200], self.path)

    def rows(self) -> list[dict]:
        """Every row written so far (none when the file does not exist yet)."""
        with self._lock:
            return read_jsonl(self.path) if self.path.is_file() else []


def confirmation(row: dict, path: str | Path) -> str:
    """What the page says once a feedback row is saved (HTML, every value escaped): the rating or the
    correction, on which answer, and the file it went to; it invites a correction after a rating."""
    shown = row["answer"] if not row["abstained"] else "the documents don't say"
    what = "thumbs-up" if row["rating"] == "up" else "thumbs-down"
    if row["correction"] is not None:
        said = f"Thanks: your correction “{html.escape(row['correction'])}” is saved"
    else:
        said = f"Thanks: your {what} on “{html.escape(shown)}” is saved"
    invite = "" if row["correction"] is not None else " If the right answer is different, say it below."
    return (f'<p class="qa-feedback-saved" role="status">{said} to <code>{html.escape(str(path))}</code>.'
            f"{invite}</p>")
