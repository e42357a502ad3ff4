"""An ASGI middleware that refuses a request body over its limit before the body is read.

Gradio reads a request's whole body before it looks at it (a question of 18 MB is 18 MB of memory,
and Python keeps much of it after), so the limit is kept where the bytes come in: a request whose
``Content-Length`` is over the limit is answered ``413`` at once, its body never read (and the
connection closed, so the client stops sending); one without a length (chunked) is counted as it
streams in and refused when it passes the limit. A request carrying files (``multipart/form-data``)
has its own, larger limit; Gradio's own ``max_file_size`` then limits each file in it.

Example:
    >>> app = FastAPI(middleware=[Middleware(BodyLimit, max_bytes=4 * 2**20, max_form_bytes=101 * 2**20)])
"""

from __future__ import annotations

import logging

from starlette.formparsers import MultiPartException

logger = logging.getLogger(__name__)


class BodyTooLarge(MultiPartException):
    """A streamed body passed its limit. A ``MultiPartException``, so that Gradio's upload route deletes
    the part of a file it saved (the client hears this middleware's 413 whatever the route answers)."""


def _megabytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (``max_form_bytes`` for ``multipart/form-data``) with a 413.

    Args:
        app: the ASGI application it guards.
        max_bytes: the largest body of a request that carries no files.
        max_form_bytes: the largest body of a request that carries files.
    """

    def __init__(self, app, max_bytes: int, max_form_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_form_bytes = max_form_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        form = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = self.max_form_bytes if form else self.max_bytes
        what = "An upload" if form else "A request"
        advice = "send fewer or smaller files" if form else "send less"
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _refuse(send, 400, "The request's Content-Length is not a number.")
                return
            if length > limit:
                logger.warning("refused %s %s of %d bytes (limit %d) from %s", scope.get("method"), scope.get("path"),
                               length, limit, (scope.get("client") or ("?",))[0])
                await _refuse(send, 413, f"{what} of {_megabytes(length)} is over the {_megabytes(limit)} the server "
                                         f"takes: {advice}.")
                return
        received = 0
        started = False
        exceeded: BodyTooLarge | None = None

        async def counted() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = BodyTooLarge(f"{what} is over the {_megabytes(limit)} the server takes: {advice}.")
                    raise exceeded
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            if exceeded is not None:
                # The route answered the refusal in its own words (FastAPI: "400 error parsing the body"):
                # the client hears the 413 instead.
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _refuse(send, 413, str(exceeded))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as err:
            logger.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), err)
            if not started:
                await _refuse(send, 413, str(err))
            return
        if exceeded is not None:
            logger.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), exceeded)


async def _refuse(send, status: int, message: str) -> None:
    """Answer ``status`` with ``message`` as plain text, and close the connection (the client may still be
    sending a body that will not be read)."""
    body = message.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
