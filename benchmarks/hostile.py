"""Hostile inputs for the security tests and the hardening measurements, made on the spot (small on disk).

Example:
    >>> path = docx_bomb(Path("/tmp/bomb.docx"))
    >>> path.stat().st_size < 30_000
    True
"""

from __future__ import annotations

import zipfile
from pathlib import Path

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>')
_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
_TAIL = "</w:body></w:document>"


def docx_bomb(path: Path, unpacked_bytes: int = 14_300_000, paragraph: str = "a" * 8000) -> Path:
    """A minimal Word document whose text, ``paragraph`` repeated, unpacks to about ``unpacked_bytes``
    of XML from a few kilobytes on disk (deflate packs a repeated run about a thousand times over).

    The XML is streamed into the archive, so making it holds one paragraph in memory, not the whole.
    """
    block = f"<w:p><w:r><w:t>{paragraph}</w:t></w:r></w:p>".encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=False) as xml:
            xml.write(_HEAD.encode())
            for _ in range(max(1, unpacked_bytes // len(block))):
                xml.write(block)
            xml.write(_TAIL.encode())
    return path


def call_api(url: str, api_name: str, data: list, timeout: float = 120) -> tuple[str | None, object]:
    """Call a named endpoint of a Gradio app over plain HTTP (``POST /gradio_api/call/NAME``, then its
    event stream): ``("complete", outputs)``, ``("error", message)``, or ``("http 413", body)`` when the
    server refuses the request itself."""
    import http.client
    import json
    import urllib.parse

    from qa.cli.remote import final_event

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("POST", f"{parts.path.rstrip('/')}/gradio_api/call/{api_name}", json.dumps({"data": data}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return f"http {response.status}", body.decode("utf-8", "replace")
        event_id = json.loads(body)["event_id"]
        connection.request("GET", f"{parts.path.rstrip('/')}/gradio_api/call/{api_name}/{event_id}")
        stream = connection.getresponse().read().decode("utf-8")
        return final_event(stream)
    finally:
        connection.close()


def post_streamed(url: str, path: str, content_type: str, chunks, declared_length: int | None = None,
                  timeout: float = 60) -> tuple[int | None, str, int]:
    """POST a body given as ``chunks`` (an iterable of bytes, never held whole) on a raw socket, with
    ``Content-Length: declared_length`` or, when it is ``None``, chunked; stop sending as soon as the
    server answers or closes. Returns (status or ``None``, the response's body, bytes of body sent)."""
    import select
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", f"Content-Type: {content_type}",
            f"Content-Length: {declared_length}" if declared_length is not None else "Transfer-Encoding: chunked"]
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed) already
            sock.sendall(chunk if declared_length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        else:
            if declared_length is None:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer, if any, is read below
    response = b""
    try:
        while not (b"\r\n\r\n" in response and _complete(response)):
            data = sock.recv(65536)
            if not data:
                break
            response += data
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        sock.close()
    if not response.startswith(b"HTTP/"):
        return None, "", sent
    head_text, _, body = response.partition(b"\r\n\r\n")
    return int(head_text.split(b" ", 2)[1]), body.decode("utf-8", "replace"), sent


def _complete(response: bytes) -> bool:
    """Whether a response with a Content-Length has all its body (one without is read to the close)."""
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def multipart_file(name: str, size: int, boundary: str = "qa-hostile-boundary", chunk: int = 2**16):
    """The body of an upload request (``files`` field) carrying one file of ``size`` bytes, in chunks."""
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
           "Content-Type: text/plain\r\n\r\n").encode()
    left = size
    while left > 0:
        yield b"a" * min(chunk, left)
        left -= chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def multipart_length(name: str, size: int, boundary: str = "qa-hostile-boundary") -> int:
    """The length of :func:`multipart_file`'s body."""
    return sum(len(c) for c in multipart_file(name, 0, boundary)) + size
