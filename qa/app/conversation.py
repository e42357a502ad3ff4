"""The chat's conversation: the earlier turns a follow-up is asked with, and what the browser keeps.

The app keeps, per chat message index, the ``/ask`` object of each answered turn (``turns``); the
conversation so far is those objects in order (:func:`history_of`), which ``QA.ask(history=...)``
reads. The chat and its turns are saved in the browser's ``localStorage`` (Gradio's ``BrowserState``,
encrypted with the server's key) after every answer, with the sources panel the last answer showed,
and restored when the page loads (:func:`saved`, :func:`restored` and :func:`sources_of`), so a reload
keeps the conversation and what was beside it.

Example:
    >>> chat, turns = restored(saved(chat, turns))
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Mapping, Sequence

logger = logging.getLogger(__name__)

FORMAT = 1  # the saved value's layout; a value of another layout is not restored
MAX_MESSAGES = 200  # messages kept in the browser (the oldest dropped first)
MAX_HISTORY = 10  # earlier turns a question is asked with


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message, whether its content is a string or Gradio's list of content blocks."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(c.get("text", "") if isinstance(c, dict) else c if isinstance(c, str) else "" for c in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return ""


def history_of(turns: Mapping[int, dict], limit: int = MAX_HISTORY) -> list[dict]:
    """The answered turns in the order they were asked (the last ``limit``), as ``QA.ask`` takes them;
    turns the app refused (an error) are left out."""
    ordered = [turns[i] for i in sorted(turns)]
    return [t for t in ordered if isinstance(t.get("question"), str) and "error" not in t][-limit:]


def saved(chat: Sequence[Mapping[str, Any]], turns: Mapping[int, dict], sources: str = "") -> dict:
    """The value to keep in the browser: the last :data:`MAX_MESSAGES` messages and their turns, and
    the sources panel as it shows the last answer (its HTML, from :func:`qa.app.render.render_sources`)."""
    dropped = max(0, len(chat) - MAX_MESSAGES)
    messages = [{"role": str(m.get("role")), "content": message_text(m)} for m in chat[dropped:]]
    kept = [[i - dropped, t] for i, t in sorted(turns.items()) if i >= dropped]
    return {"format": FORMAT, "chat": messages, "turns": kept, "sources": sources if isinstance(sources, str) else ""}


def sources_of(value: Any) -> str:
    """The sources panel a saved value kept (what the page showed beside its last answer); "" for none
    or for anything else. Like the chat's own HTML beside it, it comes back from this browser's own
    storage, where only its user can change it."""
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return ""
    sources = value.get("sources")
    return sources if isinstance(sources, str) else ""


def restored(value: Any) -> tuple[list[dict], dict[int, dict]]:
    """The chat and its turns from a saved value; an empty chat for anything else (nothing saved yet,
    another layout, a value the browser garbled)."""
    empty: tuple[list[dict], dict[int, dict]] = ([], {})
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return empty
    chat, turns = value.get("chat"), value.get("turns")
    if not isinstance(chat, list) or not isinstance(turns, list):
        return empty
    messages = []
    for m in chat:
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            logger.info("a saved conversation was not restored: a malformed message")
            return empty
        messages.append({"role": m["role"], "content": m["content"]})
    kept: dict[int, dict] = {}
    for item in turns:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int) and 0 <= item[0] < len(messages)
                and isinstance(item[1], dict)):
            kept[item[0]] = item[1]
    return messages, kept


def storage_key(*parts: str) -> str:
    """A ``localStorage`` key for one served corpus, so two apps on one host keep separate chats."""
    return "qa-chat-" + hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]
