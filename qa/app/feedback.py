"""Thumbs up/down from the chat, appended to a JSON-lines file that ``qa eval`` can read."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl  # file locks, so several app processes can share one feedback file
except ImportError:  # Windows: the thread lock still serialises one process's appends
    fcntl = None

logger = logging.getLogger(__name__)

DEFAULT_FEEDBACK = Path("feedback") / "feedback.jsonl"


class FeedbackLog:
    """Thumbs up/down, appended as JSON lines in the question-set schema ``qa eval`` reads.

    Each line: ``{"id", "question", "answers", "doc_id", "kind": "feedback", "verdict", "answer",
    "citations", "time"}``; ``answers`` is ``[answer]`` and ``doc_id`` the cited document for a thumbs up on
    an answer, else ``[]`` and ``None`` (what was shown stays in ``answer`` and ``citations``).
    Appends are serialised by a lock (and ``flock`` where the platform has it, for several processes).
    """

    def __init__(self, path: str | Path = DEFAULT_FEEDBACK):
        self.path = Path(path)
        self._lock = threading.Lock()

    @staticmethod
    def record(payload: dict, verdict: str) -> dict:
        """The feedback line for one ``QA.to_json`` payload and a verdict ("up" or "down")."""
        if verdict not in ("up", "down"):
            raise ValueError(f"A verdict is 'up' or 'down', got {verdict!r}.")
        answer = payload.get("answer")
        citations = payload.get("citations") or []
        confirmed = verdict == "up" and bool(answer)  # only then are the answer and its document a gold label
        return {
            "id": f"feedback-{uuid.uuid4().hex[:12]}",
            "question": payload["question"],
            "answers": [answer] if confirmed else [],
            "doc_id": citations[0]["doc_id"] if confirmed and citations else None,
            "kind": "feedback",
            "verdict": verdict,
            "answer": answer,
            "citations": citations,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                f.write(line)
                f.flush()
        logger.info("feedback %s on %r written to %s", row["verdict"], row["question"], self.path)
