"""Speed benchmarks that print figures (not timed tests): issue 13's measurements in one place.

Subcommands (each short; run them with ``nice -n 19`` on a shared machine, and read the figures as
meaningful only on an otherwise idle one):

- ``warm``: per-question latency of a loaded pipeline (p50/p95 over the bundled question set, 2 passes).
- ``runtimes``: each reader runtime on the question set: EM/F1, the largest change in any answer's
  score against ``torch-bf16`` (today's runtime), answers that changed, and the reader's time per question.
- ``forward``: the reader's forward pass alone on each runtime (one thread: CPU time, robust to a busy machine).
- ``load``: questions/s and latency at 1, 4, 16 and 50 concurrent clients through the app's ``/ask`` API,
  answer cache off (a server started by :mod:`benchmarks.loadtest`).
- ``cold``: wall time of a cold ``qa ask`` (a fresh interpreter each time), and of ``qa ask --server``
  against a running ``qa serve``.
- ``build``: index build passages/s (a fresh build of a folder, by default the bundled ``seeds/``).

Example:
    $ nice -n 19 python -m benchmarks.speed warm
    $ nice -n 19 python -m benchmarks.speed runtimes --runtimes torch-bf16,onnx,onnx-int8
    $ nice -n 19 python -m benchmarks.speed cold --repeat 3
    $ nice -n 19 python -m benchmarks.speed load --clients 1,4,16,50 --questions 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.evaluation.metrics import percentile

logger = logging.getLogger(__name__)

QUESTIONS = "eval/questions.jsonl"
INDEX = "embeddings"
COLD_QUESTION = "When do primary care trusts go live?"


def _latency(times_s: list[float]) -> str:
    ms = [t * 1000 for t in times_s]
    return f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, mean {np.mean(ms):.1f} ms (n={len(ms)})"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pipeline(index: str, runtime: str | None = None, reader: str | None = None, cascade: int | None = None,
              focus: int | None = None):
    from qa.answering.pipeline import QA

    return QA.load(index, reader=reader, reader_runtime=runtime, cascade=cascade, focus=focus)


def warm(args: argparse.Namespace) -> None:
    """Per-question latency of one loaded pipeline, one question at a time."""
    from qa.evaluation.runner import load_questions

    qa = _pipeline(args.index, args.runtime, args.reader, args.cascade)
    questions = [q.question for q in load_questions(args.questions)][: args.limit]
    qa.ask(questions[0])  # load the models
    times, reads, cpu0 = [], [], _cpu_s()
    for _ in range(args.passes):
        for q in questions:
            t0 = time.perf_counter()
            answer = qa.ask(q)
            times.append(time.perf_counter() - t0)
            reads.append(answer.timings["read_ms"] / 1000)
    cpu = _cpu_s() - cpu0
    cascade = f", cascade {qa.cascade}" if qa.cascade else ""
    print(f"warm, reader {qa.reader_name} on {qa.reader.runtime}{cascade}: {_latency(times)}; reading alone {_latency(reads)}; "
          f"CPU {cpu / len(times) * 1000:.1f} ms per question")


def runtimes(args: argparse.Namespace) -> None:
    """Each reader runtime on the question set: quality, change against the baseline, reader time."""
    from qa.evaluation.runner import evaluate_questions, load_questions

    questions = load_questions(args.questions)
    results = {}
    for runtime in args.runtimes.split(","):
        qa = _pipeline(args.index, runtime)
        t0, cpu0 = time.perf_counter(), _cpu_s()
        result = evaluate_questions(qa, questions)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        m = result.metrics
        results[runtime] = {
            "em": m["overall"]["em"], "f1": m["overall"]["f1"],
            "answerable_f1": (m["answers"] or {}).get("f1"),
            "gold_passage_f1": (m["reader"] or {}).get("gold_passage_f1"),
            "refused": m["abstention"]["unanswerable_refused"],
            "wrongly_refused": m["abstention"]["answerable_wrongly_refused"],
            "abstained": [r["abstained"] for r in result.records],
            "scores": [r["score"] for r in result.records],
            "answers": [r["answer"] for r in result.records],
            "wall_s": wall, "cpu_s": cpu,
        }
        # Reader time alone: the retrieved passages of every question, one question at a time.
        hits_sets = [qa.retriever.search(q.question, top_k=qa.top_k) for q in questions]
        t0 = time.perf_counter()
        for q, hits in zip(questions, hits_sets):
            qa.reader.read(q.question, [h.passage for h in hits])
        results[runtime]["read_ms"] = (time.perf_counter() - t0) / len(questions) * 1000
    base_name = "torch-bf16" if "torch-bf16" in results else next(iter(results))
    base = results[base_name]
    print(f"{len(questions)} questions ({args.questions}); changes against {base_name}")
    print(f"{'runtime':20s} {'EM':>6s} {'F1':>6s} {'ansF1':>6s} {'goldF1':>6s} {'dF1':>7s} {'max|dscore|':>11s} "
          f"{'answers changed':>15s} {'abstain flips':>13s} {'unans refused':>13s} {'ans refused':>11s} "
          f"{'read ms/q':>9s} {'eval wall s':>11s} {'eval CPU s':>10s}")
    for name, r in results.items():
        dscore = max(abs(a - b) for a, b in zip(r["scores"], base["scores"]))
        changed = sum(a != b for a, b in zip(r["answers"], base["answers"]))
        flips = sum(a != b for a, b in zip(r["abstained"], base["abstained"]))
        print(f"{name:20s} {r['em']:6.3f} {r['f1']:6.3f} {r['answerable_f1'] or 0:6.3f} {r['gold_passage_f1'] or 0:6.3f} "
              f"{r['f1'] - base['f1']:+7.4f} {dscore:11.4f} {changed:15d} {flips:13d} {r['refused']:13.3f} "
              f"{r['wrongly_refused']:11.3f} {r['read_ms']:9.1f} {r['wall_s']:11.1f} {r['cpu_s']:10.1f}")


def frontier(args: argparse.Namespace) -> None:
    """Speed against reading quality for each reader configuration, over one open corpus.

    Each configuration (``reader:runtime:cascade[@focus][:passages retrieved]``, e.g. ``accurate:onnx:2@300``: the
    fast reader narrows to 2 passages, the accurate one reads 300 characters either side of its answers) answers
    every answerable question of ``--open`` (a SQuAD-format file indexed as a folder once) with no threshold; quality is the F1 of the answer it
    would give (the calibrator's pick, or the best span without one), speed the warm time per question.
    """
    from qa.evaluation.metrics import best_over_golds, f1_score
    from qa.squad import write_corpus
    from qa.stores.local.build import build_index

    work = Path(args.work)
    questions = [q for q in write_corpus([args.open], work / "docs") if q.answers][: args.limit]
    build_index(work / "docs", work / "index", show_progress=False)  # incremental: nothing to do the second time
    print(f"{len(questions)} answerable questions of {args.open}; warm time per question (after one)")
    print(f"{'reader':10s} {'runtime':10s} {'cascade':>8s} {'k':>3s} {'F1':>6s} {'p50 ms':>8s} {'p95 ms':>8s} "
          f"{'CPU ms/q':>8s}")
    for config in args.configs.split(","):
        reader, runtime, cascade, *rest = config.split(":")
        passages, _, focus = cascade.partition("@")
        qa = _pipeline(str(work / "index"), runtime, reader, int(passages), int(focus or 0))
        k = int(rest[0]) if rest else qa.top_k
        qa.ask(questions[0].question, top_k=k)
        f1, times, cpu0 = [], [], _cpu_s()
        for q in questions:
            t0 = time.perf_counter()
            answer = qa.ask(q.question, threshold=0.0, top_k=k)
            times.append(time.perf_counter() - t0)
            f1.append(best_over_golds(f1_score, answer.text or "", list(q.answers)))
        cpu = (_cpu_s() - cpu0) / len(questions) * 1000
        ms = [t * 1000 for t in times]
        print(f"{reader:10s} {runtime:10s} {cascade:>8s} {k:3d} {100 * np.mean(f1):6.1f} {percentile(ms, 50):8.1f} "
              f"{percentile(ms, 95):8.1f} {cpu:8.1f}", flush=True)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, concurrency: int | None, reader_runtime: str | None, log: Path) -> subprocess.Popen:
    """``qa serve`` on 127.0.0.1:``port`` with the answer cache off, its output in ``log``."""
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--cache-size", "0"]
    cmd += ["--concurrency", str(concurrency)] if concurrency else []
    cmd += ["--reader-runtime", reader_runtime] if reader_runtime else []
    return subprocess.Popen(cmd, stdout=log.open("w", encoding="utf-8"), stderr=subprocess.STDOUT)


def forward(args: argparse.Namespace) -> None:
    """The reader's forward pass alone on each runtime: the retrieved windows of ``--limit`` questions, one
    question per pass, runtimes interleaved round by round (so a busy machine slows them alike), on
    ``--threads`` threads. With one thread the pass runs in this thread, and its CPU time
    (``time.thread_time``) is the compute cost, which other processes on the machine hardly change."""
    import torch

    from qa.evaluation.runner import load_questions
    from qa.reading.reader import Reader
    from qa.reading.windows import pad_batch
    from qa.reading.runtimes import OnnxSpanModel, TorchSpanModel, exported_reader
    from qa.retrieval.retriever import Retriever

    torch.set_num_threads(args.threads)
    retriever = Retriever.load(args.index)
    reader = Reader(runtime="onnx")
    windower = reader._model()[0]
    questions = [q.question for q in load_questions(args.questions)][: args.limit]
    batches = [pad_batch([(w.input_ids, w.token_type_ids)
                          for w in reader.windows(q, [h.passage.text for h in retriever.search(q, top_k=5)])],
                         windower.pad_id) for q in questions]
    models = {}
    for name in args.runtimes.split(","):
        if name.startswith("onnx"):
            models[name] = OnnxSpanModel(exported_reader(reader.path, name == "onnx-int8"), threads=args.threads)
        else:
            models[name] = TorchSpanModel(str(reader.path), name)
    walls = {n: [] for n in models}
    cpus = {n: [] for n in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            for ids, types, mask in batches:
                t0, c0 = time.perf_counter(), time.thread_time()
                model(input_ids=ids, attention_mask=mask, token_type_ids=types)
                walls[name].append(time.perf_counter() - t0)
                cpus[name].append(time.thread_time() - c0)
    tokens = np.mean([b[2].sum() for b in batches])
    print(f"reader forward pass, {len(batches)} questions x {args.rounds} rounds, {args.threads} thread(s), "
          f"{tokens:.0f} real tokens per question on average")
    for name in models:
        cpu = f"; this thread's CPU p50 {percentile([c * 1000 for c in cpus[name]], 50):.1f} ms" if args.threads == 1 else ""
        print(f"  {name:20s} wall {_latency(walls[name])}{cpu}")


def load(args: argparse.Namespace) -> None:
    """Questions/s and latency at several client counts through ``/ask``, answer cache off; and the server's
    CPU time per question, which contention on a shared machine inflates far less than wall time (two
    idle cores answer at most about 2 / CPU-per-question questions a second)."""
    from benchmarks import loadtest

    port = loadtest.free_port()
    url = f"http://127.0.0.1:{port}/"
    log = Path(tempfile.gettempdir()) / f"qa-speed-server-{port}.log"
    server = start_server(port, args.concurrency, args.reader_runtime, log)
    try:
        loadtest.wait_until_up(url, args.startup_timeout, server)
        questions = loadtest.QUESTIONS[: args.per_client]
        loadtest.run(url, 1, questions[:1])  # warm up
        for clients in [int(c) for c in args.clients.split(",")]:
            cpu0 = process_cpu_s(server.pid)
            r = loadtest.run(url, clients, questions)
            cpu = (process_cpu_s(server.pid) - cpu0) / max(r.requests, 1)
            print(f"{clients:3d} clients x {len(questions)} questions: {r.throughput_rps:5.1f} questions/s, "
                  f"p50 {r.p50_s:.3f} s, p95 {r.p95_s:.3f} s, {r.errors} errors; server CPU {cpu * 1000:.0f} ms "
                  f"per question" + (f" (first: {r.first_error})" if r.errors else ""))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"(server --concurrency {args.concurrency or 'default'}, --reader-runtime {args.reader_runtime or 'default'}, "
          f"--cache-size 0; log: {log})")


def cold(args: argparse.Namespace) -> None:
    """Wall and CPU time of ``qa ask`` in a fresh interpreter (the models' files already in the OS cache),
    and of ``qa ask --server`` (``--server auto``: against a ``qa serve`` started here)."""
    cmd = [sys.executable, "-m", "qa.cli", "ask", COLD_QUESTION]
    subprocess.run(cmd + ["--index", args.index], capture_output=True, check=True)  # file cache, ONNX export cache
    server = None
    try:
        runs = [("qa ask", ["--index", args.index])]
        if args.server:
            url = args.server
            if url == "auto":
                from benchmarks import loadtest

                port = loadtest.free_port()
                url = f"http://127.0.0.1:{port}/"
                log = Path(tempfile.gettempdir()) / f"qa-speed-server-{port}.log"
                server = loadtest.start_server(port, cache=False, concurrency=None, log_path=log)
                loadtest.wait_until_up(url, 300, server)
            runs.append(("qa ask --server", ["--server", url]))
        for label, extra in runs:
            walls, cpus = [], []
            for _ in range(args.repeat):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                done = subprocess.run(cmd + extra, capture_output=True, text=True)
                walls.append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                if done.returncode:
                    raise RuntimeError(f"{label} failed: {done.stderr[-2000:]}")
            print(f"cold {label}: wall median {np.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}); "
                  f"CPU median {np.median(cpus):.2f} s (n={len(walls)}; answer: "
                  f"{done.stdout.splitlines()[0] if done.stdout else ''!r}; stderr: {len(done.stderr)} characters)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def build(args: argparse.Namespace) -> None:
    """A fresh index build of ``--docs``: passages per second, model loading excluded."""
    from qa.embedding.encoder import load_encoder
    from qa.stores.local.build import build_index

    encoder = load_encoder()
    encoder.encode_queries(["warm up"])  # load the model outside the timing
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        stats = build_index(args.docs, Path(out) / "index", encoder=encoder, incremental=False)
        seconds = time.perf_counter() - t0
    print(f"build {args.docs}: {stats.documents} documents, {stats.passages} passages in {seconds:.1f} s: "
          f"{stats.passages / seconds:.1f} passages/s ({encoder.backend})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("warm", help="per-question latency of a loaded pipeline")
    p.add_argument("--runtime", default=None, help="reader runtime (default: the reader's default)")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    p.add_argument("--reader", default=None, help="accurate, fast or a reader folder (default: the default reader)")
    p.add_argument("--cascade", type=int, default=None, help="passages the fast reader lets through (default: as "
                   "the reader's calibration says; 0: none)")
    p.set_defaults(func=warm)
    p = sub.add_parser("frontier", help="speed against reading quality of reader configurations, on an open corpus")
    p.add_argument("--open", required=True, help="a SQuAD-format file, indexed as a folder of documents")
    p.add_argument("--work", default="runs/frontier", help="where its documents and index go")
    p.add_argument("--configs", default="fast:onnx:0,accurate:onnx:0,accurate:onnx-int8:0,accurate:onnx:2,"
                   "accurate:onnx-int8:2,accurate:onnx:1",
                   help="reader:runtime:cascade[@focus][:k], comma-separated (focus: characters the reader reads "
                        "around the fast reader's answers; k: passages retrieved, default the reader's)")
    p.add_argument("--limit", type=int, default=200, help="answerable questions (default: 200)")
    p.set_defaults(func=frontier)
    p = sub.add_parser("runtimes", help="each reader runtime: EM/F1, score changes, reader time")
    p.add_argument("--runtimes", default="torch-bf16,torch,torch-bf16-weights,onnx,onnx-int8")
    p.set_defaults(func=runtimes)
    p = sub.add_parser("forward", help="the reader's forward pass alone on each runtime")
    p.add_argument("--runtimes", default="torch-bf16,torch,torch-bf16-weights,onnx,onnx-int8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=10, help="questions (default: 10)")
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(func=forward)
    p = sub.add_parser("load", help="questions/s at several client counts through /ask, cache off")
    p.add_argument("--clients", default="1,4,16,50")
    p.add_argument("--per-client", type=int, default=4, help="questions per client (default: 4)")
    p.add_argument("--concurrency", type=int, default=None, help="the server's --concurrency (default: its own)")
    p.add_argument("--startup-timeout", type=float, default=300)
    p.add_argument("--reader-runtime", default=None, help="the server's reader runtime (default: its own)")
    p.set_defaults(func=load)
    p = sub.add_parser("cold", help="wall time of a cold qa ask")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--server", default=None,
                   help="also time qa ask --server URL against this running app (auto: start one here)")
    p.set_defaults(func=cold)
    p = sub.add_parser("build", help="index build passages/s")
    p.add_argument("--docs", default="seeds")
    p.set_defaults(func=build)
    for p in sub.choices.values():
        p.add_argument("--index", default=INDEX, help=f"the index (default: {INDEX})")
        p.add_argument("--questions", default=QUESTIONS, help=f"the question set (default: {QUESTIONS})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
