"""Soak benchmark of the running app: many clients for minutes, mixing questions, uploads and deletes,
with the server's memory followed throughout (it must level off, not grow with the requests served).

It starts ``qa serve`` on 127.0.0.1 over a copy of the bundled corpus and its index (uploads and deletes
change the copy, never ``seeds/``), with Gradio's upload folder in the same temporary place. Each client is
a thread that, until the time is up, picks at random (seeded) one of: ask a question (made unique, so the
answer cache fills to its bound instead of answering from memory), upload a small new document, or delete
one it uploaded. A change refused because others are waiting ("try again") is counted as refused, not as an
error: that is the bounded queue at work.

Printed: requests, errors (and the first few), refusals, latency p50/p95 per kind, and the server's resident
memory (RSS, its own and with its child processes) at start, after the warm-up, and at the end, with the
end's change against the warm-up's.

Example:
    $ python -m benchmarks.soak                                    # 30 clients for 5 minutes
    $ nice -n 19 python -m benchmarks.soak --clients 3 --seconds 20 --warmup 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from benchmarks.hostile import call_api
from benchmarks.loadtest import QUESTIONS, free_port, wait_until_up
from qa.evaluation.metrics import percentile

REPO = Path(__file__).resolve().parents[1]
KINDS = ("ask", "upload", "delete")
BUSY = "try again"  # the bounded queue's refusal


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident memory of ``pid``, and of ``pid`` with all its descendants, in KiB (Linux /proc)."""
    def own(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children[int(fields[1])].append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total, pending = 0, [pid]
    while pending:
        p = pending.pop()
        total += own(p)
        pending += children.get(p, [])
    return own(pid), total


def upload(url: str, name: str, text: str) -> tuple[str | None, object]:
    """Upload one file as the page's scripts do: POST it to Gradio's upload route, then call ``/upload``."""
    parts = urllib.parse.urlsplit(url)
    boundary = "qa-soak-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        connection.request("POST", "/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = connection.getresponse()
        reply = response.read().decode("utf-8", "replace")
        if response.status != 200:
            return f"http {response.status}", reply
        path = json.loads(reply)[0]
    finally:
        connection.close()
    return call_api(url, "upload", [{"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}])


class Soak:
    """The clients, their tallies and the memory samples."""

    def __init__(self, url: str, pid: int | None, seconds: float, warmup: float, mix: dict[str, float], seed: int):
        self.url, self.pid, self.seconds, self.warmup, self.mix, self.seed = url, pid, seconds, warmup, mix, seed
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.refused = 0
        self.lock = threading.Lock()
        self.memory: list[tuple[float, int, int]] = []  # (seconds since start, own KiB, with children KiB)
        self.counter = 0

    def sample(self, at: float) -> None:
        if self.pid is not None:
            self.memory.append((at, *rss_kib(self.pid)))

    def client(self, i: int, start: float) -> None:
        rng = random.Random(self.seed * 1000 + i)
        mine: list[str] = []
        kinds, weights = zip(*self.mix.items())
        while time.monotonic() - start < self.seconds:
            kind = rng.choices(kinds, weights)[0]
            if kind == "delete" and not mine:
                kind = "upload"
            with self.lock:
                self.counter += 1
                n = self.counter
            t0 = time.perf_counter()
            try:
                if kind == "ask":
                    question = f"{rng.choice(QUESTIONS)} ({n})"  # unique: the cache fills to its bound
                    event, data = call_api(self.url, "ask", [question])
                    ok = event == "complete" and data[0].get("question") == question
                elif kind == "upload":
                    name = f"soak-{i}-{n}.txt"
                    event, data = upload(self.url, name, f"Soak note {n}\n\nThe ferry number {n} leaves Oban at "
                                                         f"{n % 12 + 1} o'clock from pier {i}.\n")
                    ok = event == "complete" and any(row["file"] == name for row in data[0])
                    if ok:
                        mine.append(name[:-4])
                else:
                    doc_id = mine.pop(rng.randrange(len(mine)))
                    event, data = call_api(self.url, "delete", [doc_id, False])
                    ok = event == "complete" and all(row["id"] != doc_id for row in data[0])
                    if not ok and BUSY in str(data):
                        mine.append(doc_id)  # refused: try it again later
            except Exception as err:  # noqa: BLE001 - any failure of a request is counted and shown
                event, data, ok = "exception", repr(err), False
            elapsed = time.perf_counter() - t0
            with self.lock:
                self.latencies[kind].append(elapsed)
                if not ok and event == "error" and BUSY in str(data):
                    self.refused += 1
                elif not ok:
                    self.errors.append(f"{kind}: {event}: {str(data)[:200]}")

    def run(self, clients: int) -> None:
        start = time.monotonic()
        self.sample(0.0)
        threads = [threading.Thread(target=self.client, args=(i, start), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        warm_sampled = False
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            at = time.monotonic() - start
            if not warm_sampled and at >= self.warmup:
                self.sample(at)
                warm_sampled = True
            elif int(at) % 10 == 0:
                self.sample(at)
        for t in threads:
            t.join()
        self.sample(time.monotonic() - start)


def start_server(work: Path, port: int, log: Path, extra: Sequence[str] = ()) -> subprocess.Popen:
    """``qa serve`` over a copy of seeds/ and embeddings/ in ``work`` (the index's recorded folder stays
    beside it), with Gradio's upload folder there too."""
    shutil.copytree(REPO / "seeds", work / "seeds", copy_function=shutil.copy2)
    if (REPO / "embeddings" / "manifest.json").is_file():
        shutil.copytree(REPO / "embeddings", work / "embeddings", copy_function=shutil.copy2,
                        ignore=shutil.ignore_patterns(".lock", ".partial"))
    env = {**os.environ, "GRADIO_TEMP_DIR": str(work / "gradio")}
    command = [sys.executable, "-m", "qa.cli", "serve", "--docs", str(work / "seeds"), "--index",
               str(work / "embeddings"), "--host", "127.0.0.1", "--port", str(port), "--feedback",
               str(work / "feedback.jsonl"), *extra]
    return subprocess.Popen(command, cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=30, help="concurrent clients (default: 30)")
    parser.add_argument("--seconds", type=float, default=300, help="how long the clients run (default: 300)")
    parser.add_argument("--warmup", type=float, default=60,
                        help="seconds after which the warm memory is taken (default: 60)")
    parser.add_argument("--mix", default="ask:8,upload:1,delete:1", help="weights of the kinds (default: ask:8,upload:1,delete:1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="an option for the qa serve it starts, e.g. --serve-arg=--cache-size=0 (repeatable)")
    parser.add_argument("--url", default=None, help="a running app instead (its memory is then not followed "
                                                    "unless --pid names its process)")
    parser.add_argument("--pid", type=int, default=None, help="the process of the app at --url")
    parser.add_argument("--startup-timeout", type=float, default=900)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    mix = {k: float(w) for k, w in (item.split(":") for item in args.mix.split(","))}
    if set(mix) - set(KINDS) or args.clients < 1 or args.seconds <= 0 or not 0 <= args.warmup < args.seconds:
        parser.error(f"--mix takes {', '.join(KINDS)}; --clients >= 1; 0 <= --warmup < --seconds.")

    work = Path(tempfile.mkdtemp(prefix="qa-soak-"))
    server = None
    url, pid = args.url, args.pid
    try:
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            server = start_server(work, port, work / "server.log", args.serve_arg)
            pid = server.pid
            print(f"starting the server (log: {work / 'server.log'}) ...", file=sys.stderr)
        wait_until_up(url, args.startup_timeout, server)
        soak = Soak(url, pid, args.seconds, args.warmup, mix, args.seed)
        soak.run(args.clients)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    shutil.rmtree(work, ignore_errors=True)
    report = _report(soak, args.clients)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0 if not soak.errors else 1


def _report(soak: Soak, clients: int) -> dict:
    every = [x for values in soak.latencies.values() for x in values]
    kinds = {kind: {"requests": len(v), "p50_s": round(percentile(v, 50), 3), "p95_s": round(percentile(v, 95), 3)}
             for kind, v in sorted(soak.latencies.items())}
    memory = {}
    if soak.memory:
        warm = next((m for m in soak.memory if m[0] >= soak.warmup), soak.memory[-1])
        memory = {"start_mib": round(soak.memory[0][1] / 1024, 1), "warm_mib": round(warm[1] / 1024, 1),
                  "end_mib": round(soak.memory[-1][1] / 1024, 1),
                  "end_vs_warm": round(soak.memory[-1][1] / warm[1] - 1, 3) if warm[1] else None,
                  "with_children_end_mib": round(soak.memory[-1][2] / 1024, 1),
                  "samples": [(round(t), round(own / 1024)) for t, own, _ in soak.memory]}
    return {"clients": clients, "seconds": soak.seconds, "requests": len(every), "errors": len(soak.errors),
            "refused_busy": soak.refused, "p50_s": round(percentile(every, 50), 3),
            "p95_s": round(percentile(every, 95), 3), "kinds": kinds, "memory": memory,
            "first_errors": soak.errors[:5]}


def _print(r: dict) -> None:
    print(f"{r['requests']} requests from {r['clients']} clients over {r['seconds']:.0f} s: {r['errors']} errors, "
          f"{r['refused_busy']} changes refused as busy; p50 {r['p50_s']:.3f} s, p95 {r['p95_s']:.3f} s")
    for kind, k in r["kinds"].items():
        print(f"  {kind:<7} {k['requests']:>6} requests  p50 {k['p50_s']:.3f} s  p95 {k['p95_s']:.3f} s")
    m = r["memory"]
    if m:
        print(f"server RSS: start {m['start_mib']} MiB, after warm-up {m['warm_mib']} MiB, end {m['end_mib']} MiB "
              f"({100 * m['end_vs_warm']:+.1f}% against warm-up); with its child processes {m['with_children_end_mib']} MiB")
        print("  samples (s, MiB): " + " ".join(f"{t}:{mib}" for t, mib in m["samples"]))
    for error in r["first_errors"]:
        print(f"  error: {error}")


if __name__ == "__main__":
    sys.exit(main())
