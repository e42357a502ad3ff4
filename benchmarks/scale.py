"""Scale: the local store (FAISS-HNSW + bm25s) against Milvus Lite on 100k passages, and SciFact on both.

These print figures; they are not tests. Each store is built and searched in a child process of its
own, so its peak memory (``VmHWM``; Milvus Lite embedded runs inside that process) is its alone.

**The data.** The product's encoder embeds 90 to 190 single sentences a second on this shared 2-core
CPU (about 50 800-character passages), so 100k passages can't all be embedded for real. Instead:

1. *Real sentences, real vectors.* Distinct sentences of Wikipedia articles of SQuADShifts (new wiki)
   and SQuAD (whole articles, in file order; 4 to 60 words, one line, segmented as one sentence by
   the product's own splitter) are embedded with the product's default encoder (onnx-int8) up to
   ``--sentences`` of them, with real questions of the same articles as queries. Cached in ``--work``.
2. *Documents recombining them.* Each synthetic document takes one article and draws 20 to 80 of its
   sentences in random order, in paragraphs of 3 to 6. Its text is real prose with the article's
   vocabulary, so BM25 sees real term statistics, and documents on one article share words as
   documents on one subject do. Documents are written as ``.txt`` files and indexed by the product
   (``build_index`` / ``build_milvus``) with its default chunking (800/200), until the corpus
   reaches ``--passages`` passages.
3. *Passage vectors composed from real ones.* :class:`ComposedEncoder` embeds a passage as the mean
   of the real vectors of the sentences in it, plus Gaussian noise, renormalised. The noise is
   calibrated on this data: real encodings of sample passages lie at a median cosine ``c`` to the
   mean of their sentences' vectors (about 0.90 here), and noise of ``sigma = sqrt((1/c^2 - 1) /
   dim)`` per dimension puts a composed vector at that same cosine. Neighbourhoods are therefore
   those of real embeddings (passages of one article cluster; passages sharing sentences sit close),
   not those of random vectors, HNSW's worst case (see docs/performance.md, "Exact or approximate").

Queries are encoded for real; a search's latency excludes encoding the question (2.2 ms on one core,
docs/performance.md, "Searching"). Recall@10 is measured against exact search: dense top 10 against exact
inner-product top 10 (numpy over all vectors), hybrid top 10 against the same fusion (RRF, k=60, top
100 of each) of the exact dense list and the store's own BM25 list (BM25 is exact in both stores).

Example:
    nice -n 19 python -m benchmarks.scale run --passages 100000 --json runs/scale/100k.json
    nice -n 19 python -m benchmarks.scale scifact --beir ../shared/data/beir/scifact
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Wikipedia articles, each on one subject. SQuADShifts' Reddit file is one "article" of 2,035 unrelated
# comments and its Amazon file groups reviews by the five, so neither makes a document on one subject.
DEFAULT_FILES = ("squadshifts/new_wiki_v1.0.json", "squad/squad-v1.1-dev-40articles.json",
                 "squad/squad-v2.0-train-first10articles.json")
DEFAULT_WORK = "runs/scale"
MIN_WORDS, MAX_WORDS = 4, 60
DOC_SENTENCES = (20, 80)  # sentences per synthetic document
PARAGRAPH_SENTENCES = (3, 6)
TOP_K = 10
CANDIDATES = 100  # per list, as the retriever fuses
RRF_K = 60


# --------------------------------------------------------------------------------------------
# Real sentences and questions


@dataclass(frozen=True)
class Article:
    """One article of a SQuAD-format file: its usable sentences (distinct, in order) and questions."""

    title: str
    sentences: tuple[str, ...]
    questions: tuple[str, ...]


def usable_sentence(text: str) -> bool:
    """One line of 4 to 60 words that the product's splitter reads as a single sentence, so it is
    found again, whole, inside any passage made from it."""
    from qa.ingest.chunking import sentence_spans

    words = len(text.split())
    return (MIN_WORDS <= words <= MAX_WORDS and "\n" not in text and text == text.strip()
            and sentence_spans(text) == [(0, len(text))])


def read_articles(files: Iterable[str | Path]) -> list[Article]:
    """The articles of SQuAD-format ``files``, in file order; a sentence seen before is not repeated."""
    from qa.ingest.chunking import sentence_spans

    seen: set[str] = set()
    articles = []
    for file in files:
        for entry in json.loads(Path(file).read_text(encoding="utf-8"))["data"]:
            sentences, questions = [], []
            for paragraph in entry["paragraphs"]:
                context = paragraph["context"]
                for start, end in sentence_spans(context):
                    text = context[start:end]
                    if text not in seen and usable_sentence(text):
                        seen.add(text)
                        sentences.append(text)
                questions.extend(q["question"].strip() for q in paragraph["qas"] if q["question"].strip())
            if sentences:
                articles.append(Article(entry.get("title", ""), tuple(sentences), tuple(questions)))
    return articles


@dataclass(frozen=True)
class Pool:
    """Real sentences with their real vectors, grouped by article, and real questions as queries."""

    sentences: list[str]
    article_of: np.ndarray  # article number of each sentence
    vectors: np.ndarray  # (sentences, dim), unit length
    queries: list[str]
    query_vectors: np.ndarray

    def by_article(self) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for i, a in enumerate(self.article_of.tolist()):
            groups.setdefault(a, []).append(i)
        return [groups[a] for a in sorted(groups)]


def select_pool(articles: Sequence[Article], max_sentences: int, queries: int, seed: int = 0
                ) -> tuple[list[str], list[int], list[str]]:
    """Whole articles in order until ``max_sentences`` sentences, and ``queries`` of their questions
    drawn at random. Returns (sentences, article number of each, queries)."""
    sentences, article_of, asked = [], [], []
    for number, article in enumerate(articles):
        if len(sentences) + len(article.sentences) > max_sentences and sentences:
            break
        sentences.extend(article.sentences)
        article_of.extend([number] * len(article.sentences))
        asked.extend(article.questions)
    rng = random.Random(seed)
    distinct = list(dict.fromkeys(asked))
    return sentences, article_of, rng.sample(distinct, min(queries, len(distinct)))


def embedded_pool(files: Sequence[str | Path], max_sentences: int, queries: int, work: Path,
                  encoder=None) -> Pool:
    """:func:`select_pool`, embedded with ``encoder`` (default: the product's), cached in ``work``."""
    key = hashlib.sha256(json.dumps([[str(f) for f in files], max_sentences, queries]).encode()).hexdigest()[:12]
    cache = work / f"pool-{max_sentences}-{key}.npz"
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        return Pool(list(saved["sentences"]), saved["article_of"], saved["vectors"], list(saved["queries"]),
                    saved["query_vectors"])
    sentences, article_of, asked = select_pool(read_articles(files), max_sentences, queries)
    if encoder is None:
        from qa.embedding.encoder import load_encoder

        encoder = load_encoder()
    logger.info("embedding %d real sentences and %d questions (cached in %s)", len(sentences), len(asked), cache)
    t0 = time.perf_counter()
    vectors = np.asarray(encoder.encode_passages(sentences, show_progress=True), dtype=np.float32)
    query_vectors = np.asarray(encoder.encode_queries(asked), dtype=np.float32)
    logger.info("embedded in %.0f s", time.perf_counter() - t0)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, sentences=np.array(sentences), article_of=np.array(article_of), vectors=vectors,
             queries=np.array(asked), query_vectors=query_vectors)
    return Pool(sentences, np.array(article_of), vectors, asked, query_vectors)


# --------------------------------------------------------------------------------------------
# Synthetic documents and composed vectors


def synthetic_documents(pool: Pool, seed: int = 0) -> Iterable[str]:
    """Endless documents, each of 20 to 80 sentences of one article in random order, in paragraphs
    of 3 to 6 sentences; articles are drawn in proportion to their sentences."""
    rng = random.Random(seed)
    groups = pool.by_article()
    weights = [len(g) for g in groups]
    while True:
        group = rng.choices(groups, weights)[0]
        n = min(len(group), rng.randint(*DOC_SENTENCES))
        picked = rng.sample(group, n)
        paragraphs, i = [], 0
        while i < n:
            size = rng.randint(*PARAGRAPH_SENTENCES)
            paragraphs.append(" ".join(pool.sentences[j] for j in picked[i : i + size]))
            i += size
        yield "\n\n".join(paragraphs)


def write_corpus(pool: Pool, passages: int, folder: Path, seed: int = 0, chunk_config=None) -> dict:
    """Write synthetic documents to ``folder`` (``doc000000.txt`` ...) until they chunk into at least
    ``passages`` passages with ``chunk_config``; the same arguments write the same files.

    Returns:
        {"documents", "passages", "characters"} of the corpus written.
    """
    from qa.ingest.chunking import ChunkConfig, chunk_document
    from qa.types import Document

    chunk_config = chunk_config or ChunkConfig()
    stamp = folder / ".scale-corpus.json"
    wanted = {"passages": passages, "seed": seed, "chunking": [chunk_config.chunk_size, chunk_config.chunk_overlap],
              "pool": hashlib.sha256("\n".join(pool.sentences).encode()).hexdigest()[:16]}
    if stamp.is_file():
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        if saved["wanted"] == wanted:
            return saved["corpus"]
    if folder.exists() and any(p.name != stamp.name for p in folder.iterdir()):
        if not stamp.is_file():
            raise ValueError(f"{folder} holds files this benchmark did not write: choose another --work folder.")
        for old in folder.glob("doc*.txt"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    made = characters = documents = 0
    for text in synthetic_documents(pool, seed):
        name = f"doc{documents:06d}"
        made += len(chunk_document(Document(name, name, name, text), chunk_config))
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        documents += 1
        characters += len(text)
        if made >= passages:
            break
    corpus = {"documents": documents, "passages": made, "characters": characters}
    stamp.write_text(json.dumps({"wanted": wanted, "corpus": corpus}), encoding="utf-8")
    return corpus


def noise_scale(cosine: float, dimension: int) -> float:
    """Per-dimension standard deviation of Gaussian noise that, added to a unit vector and
    renormalised, leaves it at about ``cosine`` to where it was: 1 / sqrt(1 + sigma^2 dim) = cosine."""
    if not 0 < cosine <= 1:
        raise ValueError(f"cosine must be in (0, 1], got {cosine}")
    return math.sqrt((1 / cosine**2 - 1) / dimension)


class ComposedEncoder:
    """An :class:`~qa.embedding.encoder.Encoder` for texts made of the pool's sentences: a passage's
    vector is the mean of its sentences' real vectors plus noise (``sigma`` per dimension, seeded by
    the text, so the same text always gets the same vector), renormalised; a query's is its real one.

    Sentences of a passage not in the pool (none, when the splitter finds them as they were) are
    counted in :attr:`unknown` and left out.
    """

    name = "all-MiniLM-L6-v2"
    backend = "composed"

    def __init__(self, pool: Pool, sigma: float):
        self.sigma = sigma
        self.dimension = int(pool.vectors.shape[1])
        self._vectors = pool.vectors
        self._row = {s: i for i, s in enumerate(pool.sentences)}
        self._queries = {q: i for i, q in enumerate(pool.queries)}
        self._query_vectors = pool.query_vectors
        self.unknown = 0
        self.sentences = 0

    def mean_vector(self, text: str) -> np.ndarray:
        """Normalised mean of the real vectors of the sentences of ``text`` (zeros if none is known)."""
        from qa.ingest.chunking import sentence_spans

        rows = []
        for start, end in sentence_spans(text):
            row = self._row.get(text[start:end])
            self.sentences += 1
            if row is None:
                self.unknown += 1
            else:
                rows.append(row)
        if not rows:
            return np.zeros(self.dimension, np.float32)
        mean = self._vectors[rows].mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
            noisy = self.mean_vector(text) + np.random.default_rng(seed).normal(0, self.sigma, self.dimension)
            out[i] = noisy / np.linalg.norm(noisy)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._query_vectors[self._queries[t]] for t in texts]).astype(np.float32)


def calibrate_cosine(pool: Pool, corpus: Path, samples: int, encoder=None, seed: int = 0) -> dict:
    """Embed ``samples`` passages of the corpus for real and measure their cosine to the mean of their
    sentences' vectors: the cosine :class:`ComposedEncoder`'s noise reproduces (the median)."""
    from qa.ingest.chunking import chunk_document
    from qa.types import Document

    rng = random.Random(seed)
    files = sorted(corpus.glob("doc*.txt"))
    texts = []
    for path in rng.sample(files, min(len(files), samples)):
        passages = chunk_document(Document(path.stem, path.stem, str(path), path.read_text(encoding="utf-8")))
        texts.append(rng.choice(passages).text)
    if encoder is None:
        from qa.embedding.encoder import load_encoder

        encoder = load_encoder()
    real = np.asarray(encoder.encode_passages(texts), dtype=np.float32)
    composer = ComposedEncoder(pool, 0.0)
    means = np.stack([composer.mean_vector(t) for t in texts])
    cosines = np.einsum("nd,nd->n", real, means)
    return {"samples": len(texts), "median": float(np.median(cosines)), "p10": float(np.percentile(cosines, 10)),
            "p90": float(np.percentile(cosines, 90))}


# --------------------------------------------------------------------------------------------
# Measures


def recall_at_k(found: Sequence, truth: Sequence, k: int = TOP_K) -> float:
    """Share of the first ``k`` of ``truth`` found in the first ``k`` of ``found``."""
    expected = list(truth)[:k]
    return len(set(list(found)[:k]) & set(expected)) / len(expected) if expected else 1.0


def fuse(rankings: Sequence[Sequence], k: int = RRF_K) -> list:
    """Reciprocal rank fusion of ranked lists of ids, as the retriever fuses them (same tie-breaks)."""
    from qa.retrieval.retriever import reciprocal_rank_fusion

    keys = {key: i for i, key in enumerate(dict.fromkeys(x for r in rankings for x in r))}
    names = list(keys)
    fused = reciprocal_rank_fusion([[keys[x] for x in r] for r in rankings], k=k)
    return [names[i] for i, _ in fused]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident memory of this process image, in MiB: ``VmHWM``, which starts afresh at exec
    (``ru_maxrss`` keeps the forking parent's peak, the benchmark's own with its model loaded)."""
    return _status_mb("VmHWM")


def _import_libraries() -> None:
    """Import what either store loads, so the memory a store adds is measured without them."""
    import bm25s  # noqa: F401
    import faiss  # noqa: F401
    import pymilvus  # noqa: F401

    import qa.retrieval.retriever  # noqa: F401
    import qa.stores.milvus.store  # noqa: F401
    from milvus_lite.adapter.grpc import server  # noqa: F401


def disk_mb(path: Path) -> float:
    """Bytes of every file under ``path`` (or of ``path``), in MiB."""
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def timed_searches(retriever, queries: Sequence[str], concurrency: int) -> dict:
    """Hybrid searches (top 10) of ``queries`` by ``concurrency`` threads at once: per-query latency
    p50/p95 in ms, and queries answered per second."""
    from qa.evaluation.metrics import percentile

    def one(query: str) -> float:
        t0 = time.perf_counter()
        retriever.search(query, top_k=TOP_K, mode="hybrid")
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        times = list(pool.map(one, queries))
    wall = time.perf_counter() - t0
    return {"p50": percentile(times, 50), "p95": percentile(times, 95), "qps": len(queries) / wall}


# --------------------------------------------------------------------------------------------
# Children: one process per store and step


def _load_pool(spec: dict) -> Pool:
    saved = np.load(spec["pool"], allow_pickle=False)
    return Pool(list(saved["sentences"]), saved["article_of"], saved["vectors"], list(saved["queries"]),
                saved["query_vectors"])


def _child_build(spec: dict) -> dict:
    """Build one store from the corpus with the composed encoder: time and peak memory."""
    from qa.stores.address import build_store

    pool = _load_pool(spec)
    encoder = ComposedEncoder(pool, spec["sigma"])
    _import_libraries()
    base = current_rss_mb()
    t0 = time.perf_counter()
    stats = build_store(spec["corpus"], spec["address"], encoder=encoder, incremental=False)
    return {"build_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base,
            "passages": stats.passages, "documents": stats.documents, "index_type": stats.index_type,
            "unknown_sentences": encoder.unknown, "sentences": encoder.sentences}


def _passage_ids(store, rows: Sequence[tuple[int, float]]) -> list[str]:
    return [store.passages[r].id for r, _ in rows]


def _child_search(spec: dict) -> dict:
    """Load one store in a fresh process and search it: memory, latency, recall against exact."""
    from qa.evaluation.metrics import percentile
    from qa.retrieval.retriever import Retriever

    pool = _load_pool(spec)
    encoder = ComposedEncoder(pool, spec["sigma"])
    queries = pool.queries[: spec["queries"]]
    _import_libraries()
    base = current_rss_mb()
    t0 = time.perf_counter()
    retriever = Retriever.load(spec["address"], encoder=encoder, check_documents=False)
    out: dict = {"load_s": time.perf_counter() - t0, "base_rss_mb": base, "loaded_rss_mb": current_rss_mb()}
    store = retriever.index
    for query in queries[: spec["warmup"]]:
        retriever.search(query, top_k=TOP_K, mode="hybrid")
    for concurrency in spec["concurrency"]:
        out[f"hybrid_c{concurrency}"] = timed_searches(retriever, queries, concurrency)
    out["serving_peak_rss_mb"] = peak_rss_mb()  # before the recall checks below, which hold more
    truth = json.loads(Path(spec["truth"]).read_text(encoding="utf-8")) if Path(spec["truth"]).is_file() else None
    if truth is None:  # the local store writes the exact dense lists, from its own vectors
        vectors = store.dense.reconstruct_n(0, store.dense.ntotal)  # flat or HNSW: both keep them whole
        scores = encoder.encode_queries(queries) @ vectors.T
        top = np.argsort(-scores, axis=1)[:, :CANDIDATES]
        truth = {q: [store.passages[int(i)].id for i in row] for q, row in zip(queries, top)}
        Path(spec["truth"]).write_text(json.dumps(truth), encoding="utf-8")
    dense_recall, hybrid_recall, dense_ms, keyword_ms = [], [], [], []
    for query in queries:
        vector = encoder.encode_queries([query])[0]
        t0 = time.perf_counter()
        dense_rows = store.dense_search(vector, CANDIDATES)  # the retriever's pool; same ef as top 10
        t1 = time.perf_counter()
        keyword_rows = store.keyword_search(query, CANDIDATES)
        t2 = time.perf_counter()
        dense_ms.append((t1 - t0) * 1000)
        keyword_ms.append((t2 - t1) * 1000)
        dense, keyword = _passage_ids(store, dense_rows), _passage_ids(store, keyword_rows)
        hybrid = [h.passage.id for h in retriever.search(query, top_k=TOP_K, mode="hybrid")]
        dense_recall.append(recall_at_k(dense, truth[query]))
        hybrid_recall.append(recall_at_k(hybrid, fuse([truth[query], keyword])))
    out.update({"dense_recall@10": float(np.mean(dense_recall)), "hybrid_recall@10": float(np.mean(hybrid_recall)),
                "dense_ms": {"p50": percentile(dense_ms, 50), "p95": percentile(dense_ms, 95)},
                "bm25_ms": {"p50": percentile(keyword_ms, 50), "p95": percentile(keyword_ms, 95)},
                "peak_rss_mb": peak_rss_mb(), "queries": len(queries)})
    return out


# --------------------------------------------------------------------------------------------
# SciFact on both stores


class CachedEncoder:
    """The product's encoder with passage vectors kept in a file by text, so the same corpus is
    embedded once and its vectors reused for every store and variant (queries are encoded live)."""

    backend = "onnx-int8"

    def __init__(self, cache: Path):
        from qa.embedding.encoder import load_encoder

        self._inner = load_encoder()
        self.name, self.dimension = self._inner.name, self._inner.dimension
        self.cache = cache
        self._vectors: dict[str, np.ndarray] = {}
        if cache.is_file():
            saved = np.load(cache, allow_pickle=False)
            self._vectors = dict(zip(saved["keys"].tolist(), saved["vectors"]))
        self.embedded = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if self.key(t) not in self._vectors]
        if missing:
            for text, vector in zip(missing, self._inner.encode_passages(missing, show_progress=show_progress)):
                self._vectors[self.key(text)] = np.asarray(vector, np.float32)
            self.embedded += len(missing)
            keys = list(self._vectors)
            np.savez(self.cache, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        return np.stack([self._vectors[self.key(t)] for t in texts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.encode_queries(texts)


def _unstemmed_tokenize(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's tokenizer as the local store calls it, without the stemmer (what Milvus Lite does)."""
    from qa.stores.local.index import _bm25s

    return _bm25s().tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


ANALYZERS = {  # Milvus analyzer variants tried (Milvus Lite 3.2 honours the tokenizer and stop words only)
    "product": None,
    "no-stopwords": {"tokenizer": "standard", "filter": ["lowercase"]},
}


def _child_scifact(spec: dict) -> dict:
    """Build one SciFact store (local or Milvus Lite, one BM25 variant) and measure nDCG@10 per mode."""
    from qa.evaluation.benchmarks import beir_passages, evaluate_beir, load_beir
    from qa.ingest.chunking import ChunkConfig
    from qa.retrieval.retriever import Retriever
    from qa.stores.address import build_store
    from qa.stores.milvus.store import MAX_PASSAGE_CHARS

    variant = spec["variant"]
    if variant == "unstemmed":
        import qa.stores.local.index as local

        local.bm25_tokenize = _unstemmed_tokenize
    if spec["address"].startswith("milvus:") and ANALYZERS.get(variant):
        import qa.stores.milvus.build as milvus_build
        import qa.stores.milvus.store as milvus

        params = ANALYZERS[variant]
        milvus.analyzer = milvus_build.analyzer = lambda: params
    encoder = CachedEncoder(Path(spec["cache"]))
    t0 = time.perf_counter()
    build_store(spec["corpus"], spec["address"], encoder=encoder, incremental=False,
                chunk_config=ChunkConfig(MAX_PASSAGE_CHARS, 0))  # one passage per abstract (all are shorter)
    build_s = time.perf_counter() - t0
    retriever = Retriever.load(spec["address"], encoder=encoder, check_documents=False)
    data = load_beir(spec["beir"])
    ids = json.loads(Path(spec["ids"]).read_text(encoding="utf-8"))
    metrics, _ = evaluate_beir(retriever, data, spec["modes"], ids, passages=beir_passages(retriever))
    return {"build_s": build_s, "embedded": encoder.embedded, "metrics": metrics}


CHILDREN = {"build": _child_build, "search": _child_search, "scifact": _child_scifact}


def _in_child(task: str, **spec) -> dict:
    """Run ``CHILDREN[task](spec)`` in a fresh interpreter (same niceness) and return its result."""
    command = [sys.executable, "-m", "benchmarks.scale", "_child", task, json.dumps(spec)]
    proc = subprocess.run(command, capture_output=True, text=True)
    results = [line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not results:
        raise RuntimeError(f"scale child {task} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(results[-1])


# --------------------------------------------------------------------------------------------
# Commands


def _fresh(path: Path, work: Path) -> None:
    """Remove an output of an earlier run of this benchmark (only ever a path inside ``work``)."""
    import shutil

    if work.resolve() not in path.resolve().parents:
        raise ValueError(f"{path} is not inside {work}")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def cmd_run(args: argparse.Namespace) -> dict:
    """Both stores on ``--passages`` passages: build, memory, disk, latency, recall."""
    work = Path(args.work)
    files = [Path(f) for f in args.files] if args.files else [DATA / f for f in DEFAULT_FILES]
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    pool = embedded_pool(files, args.sentences, args.queries, work)
    pool_file = next(work.glob(f"pool-{args.sentences}-*.npz"))
    pool_s = time.perf_counter() - t0
    corpus_dir = work / f"corpus-{args.passages}"
    t0 = time.perf_counter()
    corpus = write_corpus(pool, args.passages, corpus_dir)
    corpus_s = time.perf_counter() - t0
    calibration_file = work / f"calibration-{pool_file.stem}-{args.passages}-{args.calibrate}.json"
    if calibration_file.is_file():
        calibration = json.loads(calibration_file.read_text(encoding="utf-8"))
    else:
        calibration = calibrate_cosine(pool, corpus_dir, args.calibrate)
        calibration_file.write_text(json.dumps(calibration), encoding="utf-8")
    sigma = noise_scale(calibration["median"], pool.vectors.shape[1])
    report = {"passages": args.passages, "corpus": corpus, "sentences": len(pool.sentences),
              "articles": len(pool.by_article()), "queries": len(pool.queries), "calibration": calibration,
              "sigma": sigma, "pool_s": pool_s, "corpus_s": corpus_s, "stores": {}}
    print(f"\n== data: {len(pool.sentences)} real sentences of {len(pool.by_article())} articles embedded "
          f"({pool_s:.0f} s, cached), {len(pool.queries)} real questions; {corpus['documents']} documents, "
          f"{corpus['passages']} passages (800/200), {corpus['characters'] / 1e6:.1f} M characters ({corpus_s:.0f} s); "
          f"real passages' cosine to their sentences' mean: median {calibration['median']:.3f} "
          f"(p10 {calibration['p10']:.3f}, p90 {calibration['p90']:.3f}, {calibration['samples']} passages) "
          f"-> noise sigma {sigma:.4f}", flush=True)
    truth = work / f"truth-{args.passages}.json"
    _fresh(truth, work)
    stores = {"local": (work / f"local-{args.passages}", str(work / f"local-{args.passages}")),
              "milvus-lite": (work / f"milvus-{args.passages}.db", f"milvus:{work / f'milvus-{args.passages}.db'}")}
    for name in args.stores.split(","):
        path, address = stores[name]
        _fresh(path, work)
        logger.info("%s: building %s", name, address)
        build = _in_child("build", pool=str(pool_file), sigma=sigma, corpus=str(corpus_dir), address=address)
        size = disk_mb(path)
        logger.info("%s: searching (%s)", name, build)
        search = _in_child("search", pool=str(pool_file), sigma=sigma, address=address, truth=str(truth),
                           queries=args.queries if name == "local" else args.milvus_queries, warmup=args.warmup,
                           concurrency=[1, 8])
        report["stores"][name] = {"build": build, "disk_mb": size, "search": search}
        logger.info("%s: %s", name, search)
    report["total_s"] = time.perf_counter() - t_start
    print_table(report)
    return report


def print_table(report: dict) -> None:
    stores = report["stores"]
    names = {"local": "local FAISS-HNSW + bm25s", "milvus-lite": "Milvus Lite 3.2 (embedded)"}
    n = report["corpus"]["passages"]
    rows = [
        ("build (s)", lambda r: f"{r['build']['build_s']:.0f}"),
        ("dense index", lambda r: r["build"]["index_type"]),
        ("build peak RSS (MiB)", lambda r: f"{r['build']['peak_rss_mb']:.0f}"),
        ("disk (MiB) / bytes per passage", lambda r: f"{r['disk_mb']:.0f} / {r['disk_mb'] * 2**20 / n:,.0f}"),
        ("load (s)", lambda r: f"{r['search']['load_s']:.1f}"),
        ("RSS serving, after load / peak with 8 at once (MiB)",
         lambda r: f"{r['search']['loaded_rss_mb']:.0f} / {r['search']['serving_peak_rss_mb']:.0f}"),
        ("RSS the store adds, per passage (bytes)",
         lambda r: f"{(r['search']['loaded_rss_mb'] - r['search']['base_rss_mb']) * 2**20 / n:,.0f}"),
        ("hybrid p50 / p95, 1 at a time (ms)", lambda r: f"{r['search']['hybrid_c1']['p50']:.1f} / {r['search']['hybrid_c1']['p95']:.1f}"),
        ("hybrid p50 / p95, 8 at once (ms)", lambda r: f"{r['search']['hybrid_c8']['p50']:.1f} / {r['search']['hybrid_c8']['p95']:.1f}"),
        ("dense alone / BM25 alone, top 100, p50 (ms)",
         lambda r: f"{r['search']['dense_ms']['p50']:.1f} / {r['search']['bm25_ms']['p50']:.1f}"),
        ("queries/s, 1 / 8 at once", lambda r: f"{r['search']['hybrid_c1']['qps']:.0f} / {r['search']['hybrid_c8']['qps']:.0f}"),
        ("queries searched", lambda r: f"{r['search']['queries']}"),
        ("dense recall@10 vs exact", lambda r: f"{r['search']['dense_recall@10']:.3f}"),
        ("hybrid recall@10 vs exact dense + same BM25", lambda r: f"{r['search']['hybrid_recall@10']:.3f}"),
    ]
    print(f"\n== {n:,} passages, real questions, top {TOP_K}, warm; whole run {report['total_s']:.0f} s")
    print("| | " + " | ".join(names[s] for s in stores) + " |")
    print("|---|" + "---:|" * len(stores))
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in stores.values()) + " |")


def cmd_scifact(args: argparse.Namespace) -> dict:
    """SciFact nDCG@10 and Recall@100 per mode, local and Milvus Lite, with BM25 variants; passage
    vectors embedded once (first variant) and reused by the others."""
    from qa.evaluation.benchmarks import load_beir, write_beir_corpus

    work = Path(args.work) / "scifact"
    data = load_beir(args.beir)
    ids = write_beir_corpus(data, work / "corpus")
    ids_file = work / "beir_ids.json"
    ids_file.write_text(json.dumps(ids), encoding="utf-8")
    variants = [("local", "product"), ("local", "unstemmed"), ("milvus-lite", "product"),
                ("milvus-lite", "no-stopwords")]
    report = {}
    for store, variant in variants:
        path = work / (f"local-{variant}" if store == "local" else f"milvus-{variant}.db")
        _fresh(path, work)
        address = str(path) if store == "local" else f"milvus:{path}"
        logger.info("SciFact: %s, BM25 %s", store, variant)
        report[f"{store}/{variant}"] = _in_child("scifact", variant=variant, address=address, corpus=str(work / "corpus"),
                                                 cache=str(work / "vectors.npz"), beir=str(args.beir),
                                                 ids=str(ids_file), modes=["dense", "bm25", "hybrid"])
        logger.info("%s/%s: %s", store, variant, report[f"{store}/{variant}"])
    print(f"\n== SciFact ({len(data.corpus)} abstracts, {len(data.queries)} queries), one passage per abstract, "
          "same vectors (onnx-int8) for all")
    print("| store, BM25 | build (s) | dense nDCG@10 | BM25 nDCG@10 / R@100 | hybrid nDCG@10 / R@100 |")
    print("|---|---:|---:|---:|---:|")
    for name, r in report.items():
        m = r["metrics"]
        print(f"| {name} | {r['build_s']:.0f}{' (embeds)' if r['embedded'] else ''} | {m['dense']['ndcg@10']:.4f} | "
              f"{m['bm25']['ndcg@10']:.4f} / {m['bm25']['recall@100']:.3f} | "
              f"{m['hybrid']['ndcg@10']:.4f} / {m['hybrid']['recall@100']:.3f} |")
    return {"scifact": report}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        logging.basicConfig(level=logging.WARNING)
        result = CHILDREN[argv[1]](json.loads(argv[2]))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=DEFAULT_WORK, help=f"scratch folder (default {DEFAULT_WORK})")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="both stores on N passages: build, memory, disk, latency, recall")
    p.add_argument("--passages", type=int, default=100_000)
    p.add_argument("--sentences", type=int, default=20_000, help="real sentences to embed (cached)")
    p.add_argument("--queries", type=int, default=200, help="real questions searched")
    p.add_argument("--milvus-queries", type=int, default=50,
                   help="of those, searched in Milvus Lite (its searches are slow: see docs/performance.md)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--calibrate", type=int, default=200, help="passages embedded for real to set the noise")
    p.add_argument("--stores", default="local,milvus-lite")
    p.add_argument("--files", nargs="*", default=None, help=f"SQuAD-format files (default: {', '.join(DEFAULT_FILES)})")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("scifact", help="SciFact nDCG@10 on the local store and Milvus Lite, BM25 variants")
    p.add_argument("--beir", default=str(DATA / "beir" / "scifact"))
    p.set_defaults(func=cmd_scifact)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = args.func(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
