"""Load benchmark of the app's ``/ask`` API: many concurrent clients, latency percentiles and errors.

Each client is a thread with its own connection (plain HTTP by default, or ``gradio_client``); all
start together and ask their questions one after another, each client starting at a different question.
Without ``--url`` the benchmark starts its own server (``python -m qa.cli serve``) on a free port and stops it afterwards.

Example:
    $ python -m benchmarks.loadtest                      # 50 clients x 10 questions against a fresh server
    $ python -m benchmarks.loadtest --clients 5 --questions 2 --url http://127.0.0.1:7860/
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from qa.cli.remote import final_event
from qa.evaluation.metrics import percentile

logger = logging.getLogger(__name__)

QUESTIONS = [
    "When do primary care trusts go live?",
    "Who is the chief executive of NHS North West?",
    "Which prime minister appointed the new ministerial team for health?",
    "Where is the Health Services Management Centre?",
    "What are primary care trusts heralded as a UK hybrid of?",
    "Which university held the policy seminar on primary care trusts?",
    "What is practice-based commissioning?",
    "How many PCTs collaborate in Manchester?",
    "What is the boiling point of liquid nitrogen?",
    "Who won the 2018 FIFA World Cup?",
]


@dataclass
class Report:
    clients: int
    questions_per_client: int
    requests: int
    errors: int
    p50_s: float
    p95_s: float
    max_s: float
    mean_s: float
    wall_s: float
    throughput_rps: float
    url: str
    via: str = "http"
    first_error: str = ""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if the server process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The server exited with status {process.returncode} before it was up.")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"No server answered at {url} within {timeout:.0f}s.")


def start_server(port: int, cache: bool, concurrency: int | None, log_path: Path) -> subprocess.Popen:
    """``python -m qa.cli serve`` on 127.0.0.1:``port``, its output in ``log_path``."""
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not cache:
        cmd += ["--cache-size", "0"]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    log = log_path.open("w", encoding="utf-8")
    logger.info("starting %s (log: %s)", " ".join(cmd), log_path)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


class HttpAsker:
    """One client over Gradio's REST protocol, on one kept-alive connection: ``POST /gradio_api/call/ask``
    returns an event id, ``GET /gradio_api/call/ask/<id>`` streams the result (server-sent events).

    Lighter than ``gradio_client`` (no thread per call), so the benchmark loads the server, not itself.
    """

    def __init__(self, url: str, timeout: float = 120):
        parts = urllib.parse.urlsplit(url)
        self.prefix = parts.path.rstrip("/")
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    def ask(self, question: str) -> dict:
        self.connection.request("POST", f"{self.prefix}/gradio_api/call/ask", json.dumps({"data": [question]}),
                                {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /call/ask: HTTP {response.status} {body[:200]!r}")
        event_id = json.loads(body)["event_id"]
        self.connection.request("GET", f"{self.prefix}/gradio_api/call/ask/{event_id}")
        response = self.connection.getresponse()
        stream = response.read().decode("utf-8")
        if response.status != 200:
            raise RuntimeError(f"GET /call/ask: HTTP {response.status} {stream[:200]!r}")
        event, data = final_event(stream)
        if event == "error":
            raise RuntimeError(f"the app answered with an error: {data}")
        if event == "complete":
            return data[0]
        raise RuntimeError(f"no result in the event stream: {stream[:200]!r}")


class GradioClientAsker:
    """One client through ``gradio_client``, as an API user would call the app."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False, download_files=False, analytics_enabled=False)

    def ask(self, question: str) -> dict:
        return self.client.predict(question, api_name="/ask")


def run(url: str, clients: int, questions: list[str], via: str = "http") -> Report:
    """``clients`` threads ask ``questions`` each through ``/ask``; latencies of every request."""
    start = threading.Barrier(clients + 1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        try:
            api = HttpAsker(url) if via == "http" else GradioClientAsker(url)
        except Exception as err:  # a client that cannot connect counts every question as an error
            with lock:
                errors.extend([f"connect: {err!r}"] * len(questions))
            start.wait()
            return
        start.wait()
        for k in range(len(questions)):
            q = questions[(i + k) % len(questions)]
            t0 = time.perf_counter()
            try:
                result = api.ask(q)
                ok = isinstance(result, dict) and result.get("question") == q and "abstained" in result
                problem = "" if ok else f"unexpected reply {str(result)[:200]}"
            except Exception as err:
                problem = repr(err)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        start.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        wall = time.perf_counter() - t0
    return Report(
        clients=clients, questions_per_client=len(questions), requests=len(latencies), errors=len(errors),
        p50_s=percentile(latencies, 50), p95_s=percentile(latencies, 95), max_s=max(latencies, default=float("nan")),
        mean_s=sum(latencies) / len(latencies) if latencies else float("nan"), wall_s=wall,
        throughput_rps=len(latencies) / wall if wall > 0 else float("nan"), url=url, via=via,
        first_error=errors[0] if errors else "",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running app (default: start one on a free port)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default: 50)")
    parser.add_argument("--questions", type=int, default=10,
                        help=f"questions per client, at most {len(QUESTIONS)} (default: 10)")
    parser.add_argument("--via", choices=["http", "gradio_client"], default="http",
                        help="plain HTTP (Gradio's REST protocol; light, so the server is what is measured) "
                             "or gradio_client (default: http)")
    parser.add_argument("--no-cache", action="store_true", help="start the server with its answer cache off")
    parser.add_argument("--concurrency", type=int, default=None, help="the started server's --concurrency")
    parser.add_argument("--startup-timeout", type=float, default=600,
                        help="seconds to wait for the server, which may build its index first (default: 600)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.clients < 1 or not 1 <= args.questions <= len(QUESTIONS):
        parser.error(f"--clients must be at least 1 and --questions between 1 and {len(QUESTIONS)}.")

    server = None
    url = args.url
    try:
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            log = Path(tempfile.gettempdir()) / f"qa-loadtest-server-{port}.log"
            server = start_server(port, not args.no_cache, args.concurrency, log)
        wait_until_up(url, args.startup_timeout, server)
        report = run(url, args.clients, QUESTIONS[: args.questions], args.via)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(f"{report.requests} requests from {report.clients} clients ({report.via}) to {report.url}: "
              f"{report.errors} errors; latency p50 {report.p50_s:.3f}s, p95 {report.p95_s:.3f}s, "
              f"max {report.max_s:.3f}s; {report.throughput_rps:.1f} requests/s over {report.wall_s:.1f}s")
        if report.first_error:
            print(f"first error: {report.first_error}")
    return 0 if report.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
