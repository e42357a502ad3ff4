"""Measurements of the server's limits against hostile inputs (time and memory), each in a fresh process.

- ``zip-bomb``: the 18.7 KB .docx bomb (:func:`benchmarks.hostile.docx_bomb`, 14 MB of XML inside) as an
  upload (:func:`qa.app.uploads.check_upload`) and as a file ``qa index`` reads
  (:func:`qa.ingest.documents.load_document`): seconds to refuse it, and the memory it added (the peak
  resident size over the size before, and Python's own allocations by tracemalloc);
- ``viewer``: the viewer's worst known Markdown inputs at the format limit (CPU and wall seconds to render
  each: on a shared machine the CPU seconds are the figure to compare);
- ``post --url URL``: a 200 MB body streamed to a running app's upload route: the status, the bytes the
  server let in before answering, the seconds, and the files left in ``--uploads DIR`` (its GRADIO_TEMP_DIR);
- ``bodies``: 24 questions of 18 MB (12 with a Content-Length, 12 chunked) to ``/ask`` of an app started
  here without models (a stand-in pipeline that abstains): the answers, and this process's resident memory
  (server and client together) before and after.

Example:
    $ nice -n 19 python -m benchmarks.hardening zip-bomb
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time

ZIP_BOMB = textwrap.dedent("""
    import json, resource, sys, tempfile, time, tracemalloc
    from pathlib import Path
    from benchmarks.hostile import docx_bomb
    from qa.app.uploads import InvalidUpload, check_upload
    from qa.ingest.documents import DocumentError, load_document

    def resident_kib():
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() // 1024

    path = docx_bomb(Path(tempfile.mkdtemp()) / "minutes.docx")
    data = path.read_bytes()
    before = resident_kib()
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        check_upload("minutes.docx", data) if sys.argv[1] == "upload" else load_document(path)
        refused = ""
    except (InvalidUpload, DocumentError) as err:
        refused = str(err)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    python_peak = tracemalloc.get_traced_memory()[1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"path": sys.argv[1], "bomb_bytes": len(data), "seconds": round(seconds, 4),
                      "cpu_seconds": round(cpu, 4), "extra_resident_mib": round(max(0, peak - before) / 1024, 2),
                      "python_peak_mib": round(python_peak / 2**20, 3), "refused": refused}))
""")

VIEWER = textwrap.dedent("""
    import json, time
    from qa.app.limits import VIEWER_FORMAT_CHARS
    from qa.app.viewer import markdown_html
    n = VIEWER_FORMAT_CHARS
    inputs = {"brackets": "[" * n, "emphasis": "*_" * (n // 2), "stars": "*a " * (n // 3), "links": "[a](" * (n // 4),
              "angles": "<" * n, "quotes": ">" * n, "backticks": "`a" * (n // 2), "prose": ("The ferry leaves at nine. " * n)[:n]}
    for name, text in inputs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        markdown_html(text, (10, 50), (12, 20))
        print(json.dumps({"input": name, "chars": len(text), "cpu_seconds": round(time.process_time() - c0, 3),
                          "seconds": round(time.perf_counter() - t0, 3)}), flush=True)
""")


def _child(code: str, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def zip_bomb() -> list[dict]:
    return [row for path in ("upload", "index") for row in _child(ZIP_BOMB, path)]


def post(url: str, uploads: str | None) -> dict:
    from pathlib import Path

    from benchmarks.hostile import multipart_file, multipart_length, post_streamed

    before = sorted(Path(uploads).rglob("*")) if uploads else []
    size = 200 * 2**20
    t0 = time.perf_counter()
    status, body, sent = post_streamed(url, "/gradio_api/upload", "multipart/form-data; boundary=qa-hostile-boundary",
                                       multipart_file("big.txt", size), multipart_length("big.txt", size))
    seconds = time.perf_counter() - t0
    left = [str(p) for p in sorted(Path(uploads).rglob("*")) if p not in before and p.is_file()] if uploads else None
    return {"status": status, "answer": body.strip(), "sent_bytes": sent, "seconds": round(seconds, 3),
            "new_files": left}


class _StandIn:
    """A pipeline without models: every question abstains (the app's limits are what is measured)."""

    threshold, top_k, documents = 0.5, 5, {}

    def ask(self, question, **kwargs):
        from qa.types import Answer

        return Answer(question=question, text=None, score=0.0, abstained=True, evidence="")

    def to_json(self, answer) -> dict:
        return {"question": answer.question, "answer": None, "abstained": True}


def bodies(count: int = 24, size: int = 18 * 2**20) -> dict:
    import os
    import resource
    import tempfile
    from pathlib import Path

    from benchmarks.hostile import post_streamed
    from benchmarks.loadtest import free_port
    from qa.app import ui
    from qa.app.feedback import FeedbackLog

    def resident_mib() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20

    work = tempfile.mkdtemp(prefix="qa-bodies-")
    os.environ["GRADIO_TEMP_DIR"] = work
    app = ui.build_app(_StandIn(), FeedbackLog(Path(work) / "feedback.jsonl"))
    url = ui.launch(app, port=free_port(), block=False)

    def body():
        yield b'{"data": ["'
        for _ in range(size // 2**16):
            yield b"q" * 2**16
        yield b'"]}'

    try:
        before, answers, t0 = resident_mib(), [], time.perf_counter()
        for i in range(count):
            status, _, _ = post_streamed(url, "/gradio_api/call/ask", "application/json", body(),
                                         declared_length=size // 2**16 * 2**16 + 14 if i % 2 == 0 else None)
            answers.append(status)
        seconds = time.perf_counter() - t0
        time.sleep(2)
        return {"requests": count, "body_mib": size / 2**20, "statuses": sorted(set(answers), key=str),
                "seconds": round(seconds, 2), "resident_before_mib": round(before, 1),
                "resident_after_mib": round(resident_mib(), 1)}
    finally:
        app.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hardening", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["zip-bomb", "viewer", "post", "bodies"])
    parser.add_argument("--url", help="post: the running app")
    parser.add_argument("--uploads", help="post: the app's GRADIO_TEMP_DIR, to list what it kept")
    args = parser.parse_args(argv)
    if args.what == "zip-bomb":
        rows = zip_bomb()
    elif args.what == "viewer":
        rows = _child(VIEWER)
    elif args.what == "bodies":
        rows = [bodies()]
    else:
        if not args.url:
            parser.error("post needs --url")
        rows = [post(args.url, args.uploads)]
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
