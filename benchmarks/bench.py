"""Retrieval benchmarks: build time and memory, search latency, BEIR quality, encoder options, exact vs HNSW.

These print figures; they are not tests. Timings mean something only on an otherwise idle machine.
Builds and encoders run in a child process each, so peak memory (``ru_maxrss``, which counts native
allocations that tracemalloc misses) and model caches belong to that run alone.

Example:
    python -m benchmarks.bench retrieval --docs seeds --beir ../shared/data/beir/scifact --modes dense,bm25,hybrid
    python -m benchmarks.bench encoders --beir ../shared/data/beir/scifact --options fp32,bf16,onnx
    python -m benchmarks.bench ann --sizes 10000,50000,100000,200000 --vectors runs/bench/encoders
    python -m benchmarks.bench ann --sizes "" --squad ../shared/data/squadshifts/*.json ../shared/data/squad/*.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.evaluation.metrics import percentile
from qa.retrieval.retriever import MODES

logger = logging.getLogger(__name__)

DEFAULT_WORK = "runs/bench"
ENCODER_OPTIONS = ("fp32", "fp32-b16", "fp32-b32", "fp32-b128", "fp32-unsorted", "fp32-tokensorted",
                   "bf16", "onnx", "onnx-fused", "onnx-int8")
ONE_PASSAGE = 1_000_000  # a chunk size above any BEIR document: one passage per document, as BEIR evaluators do


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(task: str, **spec) -> dict:
    """Run ``_child_<task>(spec)`` in a fresh interpreter and return the dict it prints."""
    cmd = [sys.executable, "-m", "benchmarks.bench", "_child", task, json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    results = [line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not results:
        raise RuntimeError(f"benchmark child {task} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(results[-1])


def _latency(times_ms: Sequence[float]) -> dict:
    return {"p50": percentile(times_ms, 50), "p95": percentile(times_ms, 95), "mean": float(np.mean(times_ms))}


# --------------------------------------------------------------------------------------------
# Index build (child process)


def _child_build(spec: dict) -> dict:
    t0 = time.perf_counter()
    from qa.ingest.chunking import ChunkConfig
    from qa.stores.local.build import build_index

    t_import = time.perf_counter()
    encoder = make_encoder(spec["encoder"], spec["work"])  # loads the model
    encoder.encode_queries(["warm up"])
    t_model = time.perf_counter()
    config = ChunkConfig(spec["chunk_size"], spec["chunk_overlap"])
    stats = build_index(spec["docs"], spec["out"], encoder=encoder, chunk_config=config, incremental=False)
    t_build = time.perf_counter()
    again = build_index(spec["docs"], spec["out"], encoder=encoder, chunk_config=config)  # nothing changed
    return {
        "import_s": t_import - t0, "model_load_s": t_model - t_import, "build_s": t_build - t_model,
        "total_s": t_build - t0, "noop_rebuild_s": time.perf_counter() - t_build, "noop_embedded": again.embedded,
        "documents": stats.documents, "passages": stats.passages, "index_type": stats.index_type,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_build(docs: str | Path, out: str | Path, chunk_size: int = 800, chunk_overlap: int = 200,
                  encoder: str = "onnx-int8", work: str | Path = DEFAULT_WORK) -> dict:
    """Build an index from scratch in a child process: times and peak memory of that process."""
    return _in_child("build", docs=str(docs), out=str(out), encoder=encoder, work=str(work),
                     chunk_size=chunk_size, chunk_overlap=chunk_overlap)


# --------------------------------------------------------------------------------------------
# Search latency


def corpus_queries(documents: Sequence, n: int = 200, seed: int = 0, words: int = 12) -> list[str]:
    """``n`` question-like queries: the first ``words`` words of sentences drawn from the corpus."""
    from qa.ingest.chunking import sentence_spans

    sentences = [doc.text[s:e] for doc in documents for s, e in sentence_spans(doc.text)]
    sentences = [s for s in sentences if 6 <= len(s.split()) <= 60]
    rng = random.Random(seed)
    picked = rng.sample(sentences, n) if len(sentences) >= n else [rng.choice(sentences) for _ in range(n)]
    return [" ".join(s.split()[:words]) for s in picked]


def search_latency(retriever, queries: Sequence[str], modes: Sequence[str], top_k: int = 5, warmup: int = 10) -> dict:
    """Warm per-query latency (ms) of ``retriever.search`` in each mode, for questions it has not seen:
    the retriever's cache of query vectors is emptied before each search."""
    cache = getattr(retriever, "_query_vectors", None)
    out = {}
    for mode in modes:
        for q in queries[:warmup]:
            retriever.search(q, top_k=top_k, mode=mode)
        times = []
        for q in queries:
            if isinstance(cache, dict):
                cache.clear()
            t0 = time.perf_counter()
            retriever.search(q, top_k=top_k, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
        out[mode] = _latency(times)
    return out


# --------------------------------------------------------------------------------------------
# BEIR


def beir_passage_texts(data) -> tuple[list[str], list[str]]:
    """BEIR's own input for a bi-encoder: ``title + " " + text`` per document, and the document ids."""
    ids = list(data.corpus)
    return [(data.corpus[d][0] + " " + data.corpus[d][1]).strip() for d in ids], ids


def dense_scores(passages: np.ndarray, queries: np.ndarray, doc_ids: Sequence[str], qids: Sequence[str],
                 qrels: dict) -> dict:
    """nDCG@10 and Recall@100 of exact inner-product search over normalised vectors."""
    from qa.evaluation.benchmarks import score_run

    top = np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :100]
    return score_run({qid: [doc_ids[i] for i in row] for qid, row in zip(qids, top)}, qrels)


# --------------------------------------------------------------------------------------------
# Encoder options (child process)


def fused_onnx(work: Path) -> Path:
    """The fp32 ONNX export of the default model with ONNX Runtime's transformer fusions (attention,
    layer norm, GELU) applied: a bench-only variant, measured against the backends the product offers."""
    from onnxruntime.transformers.optimizer import optimize_model

    from qa.embedding.models import resolve_model
    from qa.embedding.onnx_backend import exported_model, pipeline_config

    fused = work / "minilm.fused.onnx"
    if not fused.is_file():
        path = Path(resolve_model(None))
        _, hidden = pipeline_config(path)
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        work.mkdir(parents=True, exist_ok=True)
        optimize_model(str(exported_model(path, quantize=False)), model_type="bert",
                       num_heads=config["num_attention_heads"], hidden_size=hidden).save_model_to_file(str(fused))
    return fused


class _BatchedEncoder:
    """The default encoder with passages handed to it one batch at a time, in a chosen order."""

    def __init__(self, inner, order: str):
        self.inner, self.order = inner, order
        self.name, self.dimension, self.encode_queries = inner.name, inner.dimension, inner.encode_queries

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts, batch = list(texts), self.inner.batch_size
        if self.order == "tokens":  # longest first by word pieces, rather than by characters
            ids = self.inner.model.tokenizer(texts, truncation=True, max_length=self.inner.max_seq_length)["input_ids"]
            order = np.argsort([-len(x) for x in ids], kind="stable")
        else:  # corpus order: sentence-transformers sorts each call by length, so one call per batch
            order = np.arange(len(texts))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(texts), batch):
            rows = order[i : i + batch]
            out[rows] = self.inner.encode_passages([texts[r] for r in rows])
        return out


def make_encoder(option: str = "onnx-int8", work: str | Path = DEFAULT_WORK):
    """An encoder (the :class:`qa.embedding.encoder.Encoder` protocol) for one of ``ENCODER_OPTIONS``, model loaded."""
    from qa.embedding.encoder import SentenceTransformerEncoder, load_encoder
    from qa.embedding.onnx_backend import OnnxEncoder

    if option not in ENCODER_OPTIONS:
        raise ValueError(f"Unknown encoder option {option!r}: use one of {', '.join(ENCODER_OPTIONS)}.")
    if option == "onnx-fused":
        return OnnxEncoder(quantize=False, onnx_file=fused_onnx(Path(work)))
    if option.startswith("onnx"):
        return load_encoder(backend=option)
    batch = {"fp32-b16": 16, "fp32-b32": 32, "fp32-b128": 128}.get(option, 64)
    enc = SentenceTransformerEncoder(batch_size=batch, bf16=option == "bf16")
    if option in ("fp32-unsorted", "fp32-tokensorted"):
        return _BatchedEncoder(enc, "tokens" if option == "fp32-tokensorted" else "corpus")
    return enc


def _child_encode(spec: dict) -> dict:
    from qa.evaluation.benchmarks import load_beir

    work, option = Path(spec["work"]), spec["option"]
    data = load_beir(spec["beir"])
    texts, doc_ids = beir_passage_texts(data)
    if spec.get("limit"):
        texts, doc_ids = texts[: spec["limit"]], doc_ids[: spec["limit"]]
    qids = list(data.queries)
    t0 = time.perf_counter()
    encoder = make_encoder(option, work)
    encoder.encode_queries(["warm up"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    passages = encoder.encode_passages(texts)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    queries = np.vstack([encoder.encode_queries([data.queries[q]]) for q in qids])  # one at a time, as the retriever does
    query_ms = (time.perf_counter() - t0) * 1000 / len(qids)
    np.save(work / f"{option}.passages.npy", passages)
    np.save(work / f"{option}.queries.npy", queries)
    result = {"option": option, "load_s": load_s, "encode_s": encode_s, "passages": len(texts),
              "passages_per_s": len(texts) / encode_s, "query_ms": query_ms, "peak_rss_mb": peak_rss_mb()}
    result.update(dense_scores(passages, queries, doc_ids, qids, data.qrels))
    return result


def _child_export(spec: dict) -> dict:
    """Export the default model to ONNX (fp32, int8) and, when asked, the fused variant, timed;
    cached files are reused."""
    from qa.embedding.models import resolve_model
    from qa.embedding.onnx_backend import exported_model

    t0 = time.perf_counter()
    exported_model(Path(resolve_model(None)))
    t1 = time.perf_counter()
    if spec["fuse"]:
        fused_onnx(Path(spec["work"]))
    return {"export_and_quantize_s": t1 - t0, "fuse_s": time.perf_counter() - t1}


def compare_encoders(beir: str | Path, options: Sequence[str], work: str | Path, limit: int | None = None) -> list[dict]:
    """Encode the BEIR corpus with each option, in a child process each; nDCG@10 of dense search with
    its own vectors, and agreement (cosine) with the fp32 default's vectors."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if any(o.startswith("onnx") for o in options):
        logger.info("exporting the model to ONNX (cached): %s",
                    _in_child("export", work=str(work), fuse="onnx-fused" in options))
    rows = []
    for option in options:
        logger.info("encoder option %s", option)
        rows.append(_in_child("encode", beir=str(beir), option=option, work=str(work), limit=limit))
    ref = work / "fp32.passages.npy"
    if ref.is_file():
        base = np.load(ref)
        for row in rows:
            vecs = np.load(work / f"{row['option']}.passages.npy")
            if vecs.shape == base.shape:
                cos = np.einsum("nd,nd->n", vecs, base)
                row["cos_min"], row["cos_mean"] = float(cos.min()), float(cos.mean())
    return rows


# --------------------------------------------------------------------------------------------
# Exact against approximate search


def unit_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def compare_exact_approximate(base: np.ndarray, queries: np.ndarray, k: int = 10,
                              ef_searches: Sequence[int] = (64, 128, 256)) -> dict:
    """Build time, single-query latency (ms) and recall@k against exact search, flat vs HNSW."""
    from qa.stores.local.index import HNSW_EF_SEARCH, make_faiss_index

    def one_by_one(index) -> tuple[np.ndarray, list[float]]:
        ids, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            _, found = index.search(q[None, :], k)
            times.append((time.perf_counter() - t0) * 1000)
            ids.append(found[0])
        return np.array(ids), times

    out = {"n": len(base), "dim": base.shape[1]}
    t0 = time.perf_counter()
    flat = make_faiss_index(base, approximate=False)
    out["flat_build_s"] = time.perf_counter() - t0
    exact, times = one_by_one(flat)
    out["flat_ms"] = _latency(times)
    t0 = time.perf_counter()
    hnsw = make_faiss_index(base, approximate=True)
    out["hnsw_build_s"] = time.perf_counter() - t0
    for ef in ef_searches:
        hnsw.hnsw.efSearch = ef
        found, times = one_by_one(hnsw)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
        out[f"hnsw_ef{ef}"] = {"recall@10": recall, "ms": _latency(times)}
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    return out


# --------------------------------------------------------------------------------------------
# Commands


def _choices(value: str, allowed, what: str) -> list[str]:
    """A comma-separated option as a list, every item one of ``allowed``."""
    items = value.split(",")
    unknown = sorted(set(items) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown {what}(s) {unknown}: use {', '.join(allowed)}.")
    return items


def cmd_retrieval(args: argparse.Namespace) -> dict:
    from qa.evaluation.benchmarks import BeirData, beir_passages, evaluate_beir, load_beir, write_beir_corpus
    from qa.retrieval.retriever import Retriever

    modes = _choices(args.modes, MODES, "retrieval mode")
    work = Path(args.work)
    models = work / "encoders"  # where the ONNX exports live
    if args.encoder.startswith("onnx"):
        logger.info("exporting the model to ONNX (cached): %s",
                    _in_child("export", work=str(models), fuse=args.encoder == "onnx-fused"))
    encoder = make_encoder(args.encoder, models)  # the query encoder of every index below
    report: dict = {"encoder": args.encoder}
    if args.docs:
        out = work / "seeds-index"
        build = measure_build(args.docs, out, encoder=args.encoder, work=models)
        report["corpus_build"] = build
        print(f"\n== {args.docs} (encoder {args.encoder}): {build['documents']} documents, {build['passages']} passages ({build['index_type']})")
        print(f"build from scratch {build['build_s']:.2f} s + model load (with torch import) {build['model_load_s']:.2f} s "
              f"= {build['total_s']:.2f} s; "
              f"no-change rebuild {build['noop_rebuild_s']:.2f} s; peak RSS {build['peak_rss_mb']:.0f} MiB")
        retriever = Retriever.load(out, encoder=encoder)
        queries = corpus_queries(list(retriever.documents.values()), n=args.queries)
        latency = search_latency(retriever, queries, modes)
        report["corpus_latency_ms"] = latency
        print(f"warm search latency, {len(queries)} queries, top_k=5 (ms):")
        for mode, lat in latency.items():
            print(f"  {mode:7} p50 {lat['p50']:6.2f}  p95 {lat['p95']:6.2f}  mean {lat['mean']:6.2f}")
    if args.beir:
        data = load_beir(args.beir)
        if args.limit:  # a quick try: the first N documents (the figures then mean nothing)
            data = BeirData(dict(list(data.corpus.items())[: args.limit]), data.queries, data.qrels)
        # One folder per data set (and limit): a corpus or index never mixes two data sets.
        dataset = work / "beir" / (Path(args.beir).resolve().name + (f"-{args.limit}" if args.limit else ""))
        ids = write_beir_corpus(data, dataset / "corpus")
        variants = {"doc": ONE_PASSAGE, "chunked": 800}
        for variant in _choices(args.beir_passages, variants, "--beir-passages value"):
            size = variants[variant]
            out = dataset / f"index-{variant}"
            build = measure_build(dataset / "corpus", out, chunk_size=size, chunk_overlap=0 if variant == "doc" else 200,
                                  encoder=args.encoder, work=models)
            retriever = Retriever.load(out, encoder=encoder)
            metrics, _ = evaluate_beir(retriever, data, modes, ids, passages=beir_passages(retriever))
            report[f"beir_{variant}"] = {"build": build, "metrics": metrics}
            label = "one passage per document" if variant == "doc" else "800/200 chunks, best passage per document"
            print(f"\n== BEIR {Path(args.beir).name} ({label}; encoder {args.encoder}): {build['documents']} documents, "
                  f"{build['passages']} passages, {len(data.queries)} queries")
            print(f"index build {build['build_s']:.1f} s (+ model load {build['model_load_s']:.1f} s); "
                  f"peak RSS {build['peak_rss_mb']:.0f} MiB")
            print(f"  {'mode':7} {'nDCG@10':>8} {'R@100':>8}")
            for mode, m in metrics.items():
                print(f"  {mode:7} {m['ndcg@10']:8.4f} {m['recall@100']:8.4f}")
    return report


def cmd_encoders(args: argparse.Namespace) -> dict:
    options = _choices(args.options, ENCODER_OPTIONS, "encoder option")
    rows = compare_encoders(args.beir, options, Path(args.work) / "encoders", limit=args.limit)
    print(f"\n== encoder options on BEIR {Path(args.beir).name} ({rows[0]['passages']} passages, title + text)")
    print(f"  {'option':17} {'load s':>7} {'encode s':>9} {'pass/s':>7} {'query ms':>9} {'nDCG@10':>8} {'R@100':>7} "
          f"{'cos min':>8} {'RSS MiB':>8}")
    for r in rows:
        print(f"  {r['option']:17} {r['load_s']:7.1f} {r['encode_s']:9.1f} {r['passages_per_s']:7.1f} {r['query_ms']:9.2f} "
              f"{r['ndcg@10']:8.4f} {r['recall@100']:7.4f} {r.get('cos_min', float('nan')):8.5f} {r['peak_rss_mb']:8.0f}")
    return {"encoders": rows}


def squad_vectors(files: Sequence[str], limit: int, work: Path, queries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Real embeddings at scale: up to ``limit`` distinct sentences of the contexts in SQuAD-format
    ``files`` and ``queries`` of their questions, encoded with the default encoder (cached in ``work``)."""
    from qa.ingest.chunking import sentence_spans
    from qa.embedding.encoder import load_encoder
    from qa.squad import load_squad

    key = hashlib.sha256(json.dumps([sorted(map(str, files)), limit, queries]).encode()).hexdigest()[:12]
    cache = work / f"squad-{limit}-{key}.npz"
    if cache.is_file():
        saved = np.load(cache)
        return saved["base"], saved["queries"]
    sentences: dict[str, None] = {}
    questions: list[str] = []
    for file in files:
        contexts: dict[str, None] = {}
        for ex in load_squad(file):
            questions.append(ex.question)
            contexts.setdefault(ex.context, None)
        for context in contexts:
            for start, end in sentence_spans(context):
                sentences.setdefault(context[start:end].strip(), None)
    texts = [t for t in sentences if len(t.split()) >= 4][:limit]
    rng = random.Random(0)
    asked = rng.sample(questions, min(queries, len(questions)))
    encoder = load_encoder()
    logger.info("encoding %d sentences from %d files", len(texts), len(files))
    base, query_vectors = encoder.encode_passages(texts, show_progress=True), encoder.encode_queries(asked)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=query_vectors)
    return base, query_vectors


def cmd_ann(args: argparse.Namespace) -> dict:
    rows = []
    print(f"\n== exact (flat) vs HNSW, single-query search, top 10, {args.queries} queries")
    print(f"  {'data':18} {'build flat':>10} {'build hnsw':>10} {'flat p50':>9} {'flat p95':>9}  "
          "hnsw efSearch: recall@10 / p50 ms")
    sets = [(f"random {n}", lambda n=n: (unit_vectors(n, seed=1), unit_vectors(args.queries, seed=2)))
            for n in (int(s) for s in args.sizes.split(",") if s)]
    if args.vectors:
        folder = Path(args.vectors)
        sets.append(("scifact real", lambda: (np.load(folder / "fp32.passages.npy"), np.load(folder / "fp32.queries.npy"))))
    if args.squad:
        wanted = [int(n) for n in args.real_sizes.split(",")]
        real_base, real_queries = squad_vectors(args.squad, max(wanted), Path(args.work))
        sizes = sorted({min(n, len(real_base)) for n in wanted})  # at most what there is
        sets.extend((f"sentences {n}", lambda n=n: (real_base[:n], real_queries)) for n in sizes)
    for name, make in sets:
        base, queries = make()
        row = compare_exact_approximate(np.ascontiguousarray(base), np.ascontiguousarray(queries[: args.queries]))
        row["data"] = name
        rows.append(row)
        hnsw = "  ".join(f"ef{k[7:]} {v['recall@10']:.3f}/{v['ms']['p50']:.2f}" for k, v in row.items() if k.startswith("hnsw_ef"))
        print(f"  {name:18} {row['flat_build_s']:9.2f}s {row['hnsw_build_s']:9.1f}s {row['flat_ms']['p50']:9.2f} "
              f"{row['flat_ms']['p95']:9.2f}  {hnsw}", flush=True)
    return {"ann": rows}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        task, spec = argv[1], json.loads(argv[2])
        logging.basicConfig(level=logging.WARNING)
        result = {"build": _child_build, "encode": _child_encode, "export": _child_export}[task](spec)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=DEFAULT_WORK, help=f"scratch folder for indexes and vectors (default {DEFAULT_WORK})")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("retrieval", help="build time, peak memory, search latency; BEIR nDCG@10 and Recall@100")
    p.add_argument("--docs", default="seeds", help="corpus for build time and latency ('' to skip)")
    p.add_argument("--beir", default=None, help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    p.add_argument("--beir-passages", default="doc", help="doc (one passage per document), chunked, or both: doc,chunked")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, any of {', '.join(MODES)}")
    p.add_argument("--queries", type=int, default=200, help="latency queries drawn from the corpus")
    p.add_argument("--limit", type=int, default=None, help="only the first N BEIR documents (for a quick try)")
    p.add_argument("--encoder", default="onnx-int8", choices=ENCODER_OPTIONS, help="encoder option (see `encoders`; default: the product's, onnx-int8)")
    p.set_defaults(func=cmd_retrieval)
    p = sub.add_parser("encoders", help="encoding speed and nDCG@10 of encoder options on a BEIR corpus")
    p.add_argument("--beir", required=True)
    p.add_argument("--options", default=",".join(ENCODER_OPTIONS), help=f"any of {', '.join(ENCODER_OPTIONS)}")
    p.add_argument("--limit", type=int, default=None, help="only the first N documents (for a quick try)")
    p.set_defaults(func=cmd_encoders)
    p = sub.add_parser("ann", help="flat vs HNSW: build time, latency, recall@10")
    p.add_argument("--sizes", default="10000,50000,100000,200000", help="random 384-d unit vectors, comma-separated counts")
    p.add_argument("--vectors", default=None, help="folder with fp32.passages.npy and fp32.queries.npy (from `encoders`)")
    p.add_argument("--squad", nargs="*", default=None, help="SQuAD-format files: real sentence embeddings at scale")
    p.add_argument("--real-sizes", default="20000,50000,100000", help="sentence counts to compare at (with --squad)")
    p.add_argument("--queries", type=int, default=200)
    p.set_defaults(func=cmd_ann)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = args.func(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
