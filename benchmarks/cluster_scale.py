"""Indexing on a local Dask cluster: passages a second with 1 and 2 workers of one core each, the
scaling efficiency, and the client's peak memory.

Documents are BEIR SciFact abstracts written as text files (title, blank line, text); each run is a
full build (``--full``: everything embedded) of a fresh local store by ``qa.cluster.build``, with the
product's encoder (onnx-int8, 800/200 passages). Worker ``k`` is pinned to core ``k``, and every
worker loads and warms its encoder before the clock starts, so the time is reading, chunking,
embedding, gathering and writing. Each run is a child process: its peak RSS (``ru_maxrss``) is the
client's, with the local scheduler it runs (the workers are processes of their own). Timings mean
something only on an otherwise idle machine with at least as many cores as the most workers.

Example:
    python -m benchmarks.cluster_scale --beir ../shared/data/beir/scifact --workers 1,2
    nice -n 19 python -m benchmarks.cluster_scale --beir ../shared/data/beir/scifact --documents 40  # a check
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

logger = logging.getLogger(__name__)

DEFAULT_WORK = "runs/cluster_scale"


def _warm(model: str | None, backend: str) -> int:
    """On a worker: load the encoder and embed once; returns the core it is pinned to."""
    from qa.cluster.tasks import EncoderSpec

    EncoderSpec(model, backend).load().encode_passages(["A sentence to warm the encoder up."])
    return sorted(os.sched_getaffinity(0))[0]


def _child_build(spec: dict) -> dict:
    """One build on a fresh local cluster of ``spec["workers"]`` single-core workers (in a child process)."""
    from distributed import Client, LocalCluster

    from qa.cluster.build import build_on_cluster

    workers, cores = spec["workers"], sorted(os.sched_getaffinity(0))
    with LocalCluster(host="127.0.0.1", n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        for k, address in enumerate(sorted(client.nthreads())):  # worker k on core k
            client.run(os.sched_setaffinity, 0, {cores[k % len(cores)]}, workers=[address])
        pinned = sorted(client.run(_warm, None, spec["backend"]).values())
        t0 = time.perf_counter()
        stats = build_on_cluster(spec["docs"], spec["out"], client, backend=spec["backend"], incremental=False)
        seconds = time.perf_counter() - t0
    return {"workers": workers, "cores": pinned, "documents": stats.documents, "passages": stats.passages,
            "embedded": stats.embedded, "seconds": round(seconds, 2),
            "passages_per_s": round(stats.embedded / seconds, 2), "backend": spec["backend"],
            "client_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _in_child(**spec) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.cluster_scale", "_child", json.dumps(spec)],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"the child run failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def write_documents(beir: Path, folder: Path, limit: int | None) -> int:
    """SciFact's first ``limit`` abstracts (all by default) as text files in ``folder``."""
    from qa.evaluation.benchmarks import BeirData, load_beir, write_beir_corpus

    data = load_beir(beir)
    corpus = dict(list(data.corpus.items())[:limit] if limit else data.corpus.items())
    write_beir_corpus(BeirData(corpus, {}, {}), folder)
    return len(corpus)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        logging.basicConfig(level=logging.WARNING)
        print("RESULT " + json.dumps(_child_build(json.loads(argv[1]))), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", required=True, help="a BEIR folder with corpus.jsonl (SciFact)")
    parser.add_argument("--documents", type=int, default=None, help="only the first N documents (default: all)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, one core each (default: 1,2)")
    parser.add_argument("--backend", default="onnx-int8", help="the encoder backend (default: onnx-int8)")
    parser.add_argument("--work", default=DEFAULT_WORK, help=f"where documents and indexes go (default: {DEFAULT_WORK})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    work = Path(args.work)
    docs = work / "corpus"
    count = write_documents(Path(args.beir), docs, args.documents)
    runs = []
    for workers in [int(w) for w in args.workers.split(",")]:
        out = work / f"index-{workers}"
        shutil.rmtree(out, ignore_errors=True)  # a fresh store: this benchmark's own folder
        runs.append(_in_child(workers=workers, docs=str(docs), out=str(out), backend=args.backend))
        logger.info("%s", runs[-1])
    base = runs[0]["passages_per_s"] / runs[0]["workers"]
    print(f"\n== {count} SciFact abstracts, {runs[0]['passages']} passages (800/200), {args.backend}, "
          f"{os.cpu_count()} CPUs ({_cpu_name()})")
    print("| workers (1 core each) | build (s) | passages/s | speed-up | scaling efficiency | client peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        speedup = r["passages_per_s"] / runs[0]["passages_per_s"]
        print(f"| {r['workers']} | {r['seconds']:.1f} | {r['passages_per_s']:.1f} | {speedup:.2f}x | "
              f"{r['passages_per_s'] / (base * r['workers']):.0%} | {r['client_peak_rss_mb']:.0f} |")
    print(f"per core: {base:.1f} passages/s")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
