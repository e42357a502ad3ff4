"""``qa ask --server URL``: ask a running ``qa serve`` instead of loading the models in this process.

The app's ``/ask`` API over Gradio's REST protocol: ``POST {url}/gradio_api/call/ask`` returns an event
id, ``GET {url}/gradio_api/call/ask/{id}`` streams the result as server-sent events. Only the standard
library is imported, so the question costs the server's answer time plus a few milliseconds.

Example:
    >>> ask_server("http://127.0.0.1:7860/", "When do primary care trusts go live?")["answer"]
    'April 2000'
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

from qa.errors import InvalidInput, UserError

logger = logging.getLogger(__name__)

TIMEOUT_S = 120


class ServerUnavailable(UserError):
    """No ``qa serve`` answers at the address given."""


def _endpoint(url: str) -> str:
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"--server takes the address of a running qa serve, e.g. http://127.0.0.1:7860/, got {url!r}.")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/gradio_api/call/ask"


def ask_server(url: str, question: str, doc_ids: Sequence[str] | None = None, timeout: float = TIMEOUT_S) -> dict:
    """The ``/ask`` answer of the app at ``url`` (the same object as ``qa ask --json``).

    Raises:
        ServerUnavailable: nothing answers at ``url``, or it is not a qa app.
        InvalidInput: the app refused the question (its message says why).
    """
    endpoint = _endpoint(url)
    body = json.dumps({"data": [question, None, list(doc_ids) if doc_ids else None]}).encode("utf-8")
    request = urllib.request.Request(endpoint, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            event_id = json.loads(response.read())["event_id"]
        with urllib.request.urlopen(f"{endpoint}/{event_id}", timeout=timeout) as response:
            stream = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
        reason = getattr(err, "reason", err)
        raise ServerUnavailable(f"No qa serve answers at {url} ({reason}): start one with `qa serve`, "
                                "or leave out --server.") from None
    event, data = final_event(stream)
    if event == "error":
        message = (data.get("error") or data.get("message")) if isinstance(data, dict) else data
        raise InvalidInput(f"the server refused the question: {message or 'no reason given'}")
    if event == "complete":
        return data[0]
    raise ServerUnavailable(f"The server at {url} sent no answer: is it a qa serve?")


def final_event(stream: str) -> tuple[str | None, object]:
    """The first ``complete`` or ``error`` event of a Gradio ``/call`` event stream and its decoded data;
    ``(None, None)`` when there is none."""
    event = None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            return event, json.loads(line[5:])
    return None, None
