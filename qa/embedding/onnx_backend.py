"""A sentence-transformers model run by ONNX Runtime, its weights optionally quantized to int8.

The default encoder backend: the int8 model encodes passages and queries several times faster than
sentence-transformers in fp32 at the same retrieval quality (``python -m benchmarks.bench encoders --beir
DIR``; docs/performance.md). The ``onnx`` backend keeps fp32 weights: the same vectors as sentence-transformers.

The ONNX files are exported from the installed weights on first use (about 10 s) and cached under
``$QA_CACHE/onnx`` (default ``~/.cache/qa/onnx``); nothing is downloaded. Any model whose
sentence-transformers pipeline is a transformer, mean pooling and (optionally) normalisation can be
exported; others need the ``torch`` backend. Dynamic int8 quantization scales activations per batch,
so a text's int8 vector depends slightly on the texts batched with it (cosine 0.98 and above).

Example:
    >>> from qa.embedding.onnx_backend import OnnxEncoder
    >>> OnnxEncoder().encode_queries(["When do primary care trusts go live?"]).shape
    (1, 384)
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.batching import BatchQueue
from qa.embedding.models import DEFAULT_MODEL, resolve_model
from qa.errors import InvalidInput
from qa.onnx_runtime import atomic_folder, cached_export, quantize_int8, session_options, usable_cores

logger = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INT8_REFUSED = "model.int8.refused.txt"  # written in place of INT8_FILE when it fails its check
_LOAD_LOCK = threading.Lock()
EXPORT_CHECK = ("Primary care trusts commission hospital services.", "When do they go live?")


def pipeline_config(model_dir: Path) -> tuple[int, int]:
    """``(max_seq_length, dimension)`` of a sentence-transformers folder that ONNX can run.

    Raises:
        InvalidInput: not a local sentence-transformers folder, or its pooling is not mean pooling.
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        raise InvalidInput(f"The ONNX backend needs a local sentence-transformers folder (with modules.json); "
                         f"{model_dir} is not one. Use the torch backend (--backend torch) for this model.")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8")) \
        if kinds[:2] == ["Transformer", "Pooling"] else {}
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if set(kinds[2:]) - {"Normalize"} or modes != {"pooling_mode_mean_tokens"}:
        raise InvalidInput(f"The ONNX backend runs transformer + mean pooling models; {model_dir} has "
                         f"{' + '.join(kinds)} ({', '.join(sorted(modes)) or 'no pooling'}). "
                         "Use the torch backend (--backend torch) for this model.")
    config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8")) \
        if (model_dir / "sentence_bert_config.json").is_file() else {}
    return int(config.get("max_seq_length") or 512), int(pooling["word_embedding_dimension"])


def exported_model(model_dir: Path, quantize: bool = True) -> Path:
    """The cached ONNX file of ``model_dir`` (int8 or fp32), exported on first use.

    Raises:
        InvalidInput: int8 was asked for and the model loses too much in int8 (its note says how much).
    """
    if not quantize:
        return cached_export(model_dir, FP32_FILE, _export)
    int8 = cached_export(model_dir, INT8_FILE, _export)
    refused = int8.with_name(INT8_REFUSED)
    if not int8.is_file() and refused.is_file():
        raise InvalidInput(f"{model_dir.name} loses too much in int8 ({refused.read_text(encoding='utf-8').strip()}): "
                           "use --backend onnx (fp32) or --backend torch.")
    return int8


def _export(model_dir: Path, folder: Path) -> None:
    """Export fp32 and int8 ONNX files of the sentence-transformers model ``model_dir`` as ``folder``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    names = list(tokenizer.model_input_names)

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    sample = tokenizer(list(EXPORT_CHECK), padding=True, return_tensors="pt")
    with atomic_folder(folder, FP32_FILE) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            reference = model(**sample).last_hidden_state.numpy()
            torch.onnx.export(LastHidden(model), tuple(sample[n] for n in names), str(tmp / FP32_FILE),
                              input_names=names, output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]})
        quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE)
        _check_export(tmp, names, {n: sample[n].numpy() for n in names}, reference)


def _check_export(folder: Path, names: list[str], inputs: dict, reference: np.ndarray) -> None:
    """The exported files must reproduce the torch model: fp32 hidden states to 1e-3, int8
    sentence vectors to cosine 0.95 (a model that quantizes well stays well above it).

    An fp32 file that doesn't fails the export. An int8 file that doesn't (all-mpnet-base-v2's, for one) is
    left out with a note saying why, and only the int8 backend refuses to run.
    """
    import onnxruntime as ort

    def run(file: str) -> np.ndarray:
        session = ort.InferenceSession(str(folder / file), session_options(), providers=["CPUExecutionProvider"])
        return session.run(None, {n: inputs[n].astype(np.int64) for n in names})[0]

    if np.abs(run(FP32_FILE) - reference).max() >= 1e-3:
        raise RuntimeError(f"The ONNX export {FP32_FILE} does not reproduce the model; use the torch backend.")
    mask = inputs["attention_mask"]
    cosine = float(_cosines(mean_pool(run(INT8_FILE), mask), mean_pool(reference, mask)).min())
    if cosine <= 0.95:
        (folder / INT8_FILE).unlink()
        (folder / INT8_REFUSED).write_text(f"its int8 vectors are at cosine {cosine:.3f} to its own, 0.95 needed\n",
                                           encoding="utf-8")
        logger.info("the int8 ONNX export is left out: cosine %.3f to the model's own vectors", cosine)


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors over real (unpadded) tokens, as sentence-transformers' mean pooling."""
    mask = attention_mask[..., None].astype(np.float32)
    return (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("nd,nd->n", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _cached_snapshot(name: str) -> Path:
    """The local folder of a hub model name already in the Hugging Face cache (nothing is downloaded),
    or the name itself when it is not there."""
    try:
        from huggingface_hub import snapshot_download

        repo = name if "/" in name else f"sentence-transformers/{name}"
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: pipeline_config says what to do
        return Path(name)


class PaddedTokenizer:
    """The model's tokenizer set up once to cut texts to ``max_length`` tokens and pad each call's texts
    to the longest: what ``AutoTokenizer(texts, padding=True, truncation=True, max_length=...)`` returns,
    without importing transformers (a model folder with a ``tokenizer.json`` needs only the Rust
    ``tokenizers``). Its settings never change after construction, so threads can share it.

    Args:
        model_dir: the model's folder.
        max_length: most tokens per text, special tokens included.
    """

    def __init__(self, model_dir: str | Path, max_length: int):
        model_dir = Path(model_dir)
        self._fallback = None
        if not (model_dir / "tokenizer.json").is_file():  # a slow-tokenizer-only model: transformers builds one
            from transformers import AutoTokenizer

            self._fallback, self._max_length = AutoTokenizer.from_pretrained(model_dir), max_length
            return
        from tokenizers import Tokenizer

        config_file = model_dir / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        pad_token = config.get("pad_token") or "[PAD]"
        pad_token = pad_token.get("content", "[PAD]") if isinstance(pad_token, dict) else pad_token
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length)
        pad_id = self._tokenizer.token_to_id(pad_token)
        self._tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``token_type_ids`` and ``attention_mask`` of ``texts``, int64, one row per text."""
        if self._fallback is not None:
            enc = self._fallback(list(texts), padding=True, truncation=True, max_length=self._max_length,
                                 return_tensors="np")
            return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }


@functools.lru_cache(maxsize=4)
def _load_session(file: str, model_dir: str, max_length: int):
    """An ONNX Runtime session for ``file``, the model's tokenizer (see :class:`PaddedTokenizer`) and the
    session's input names: loaded once per process, so the index build and the retriever after it share them."""
    import onnxruntime as ort

    logger.info("loading embedding model %s (ONNX)", file)
    session = ort.InferenceSession(file, session_options(), providers=["CPUExecutionProvider"])
    return session, PaddedTokenizer(model_dir, max_length), [i.name for i in session.get_inputs()]


def _worker_sessions(file: str, count: int) -> tuple:
    """``count`` sessions of ``file`` with one thread each, for :meth:`OnnxEncoder.encode_passages`."""
    import onnxruntime as ort

    return tuple(ort.InferenceSession(file, session_options(1), providers=["CPUExecutionProvider"])
                 for _ in range(count))


def load_exported(model_dir: Path, quantize: bool = True, max_length: int = 512):
    """The session of ``model_dir``'s cached export (see :func:`_load_session`), exported on first use.

    A cached file ONNX Runtime can't load (cut short by a full disk or a killed process) is exported
    again, with a warning: the cache folder is this module's own.
    """
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, \
        NoSuchFile

    file = exported_model(model_dir, quantize)
    try:
        return _load_session(str(file), str(model_dir), max_length)
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile) as err:
        logger.warning("the cached ONNX export %s can't be loaded (%s); exporting it again", file,
                       str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        shutil.rmtree(file.parent)
        return _load_session(str(exported_model(model_dir, quantize)), str(model_dir), max_length)


PASSAGE_BATCH = 16  # fastest for int8 on two cores: python -m benchmarks.bench encoders --beir DIR
# Passages are encoded by one single-threaded session a core, each taking every N-th run: faster than one session
# on all the cores, with the same vectors (a run's rows don't depend on which session runs it), for the memory
# each session keeps until release_workers() (python -m benchmarks.bench retrieval --beir DIR). Queries keep the
# shared session.
MAX_PASSAGE_WORKERS = 8


class OnnxEncoder:
    """The :class:`qa.embedding.encoder.Encoder` protocol on ONNX Runtime: the model's own tokenizer and
    truncation, mean pooling over real tokens, unit-length vectors; passages encoded longest first,
    so each batch pads little.

    Args:
        model: a path or name (see :func:`qa.embedding.models.resolve_model`); ``None`` for the default.
        quantize: int8 weights (backend ``onnx-int8``) or fp32 (``onnx``, whose queries asked from several
            threads at once are encoded together: see :class:`qa.batching.BatchQueue`).
        batch_size: passages per run.
        onnx_file: run this ONNX file (inputs as exported here) instead of the cached export.
        threads: cores passages are embedded on (one single-threaded session each); default every core
            this process may run on. A cluster's worker gives 1: it runs one task a thread.

    Raises:
        InvalidInput: the model is not a local transformer + mean pooling sentence-transformers folder.
    """

    def __init__(self, model: str | None = None, quantize: bool = True, batch_size: int = PASSAGE_BATCH,
                 onnx_file: str | Path | None = None, threads: int | None = None):
        self.name = model or DEFAULT_MODEL
        self.backend = "onnx-int8" if quantize else "onnx"
        self.path = Path(resolve_model(model))
        if not self.path.is_dir():
            self.path = _cached_snapshot(str(self.path))
        self.max_seq_length, self.dimension = pipeline_config(self.path)
        self.quantize, self.batch_size, self.onnx_file, self.threads = quantize, batch_size, onnx_file, threads
        self._loaded = None  # (session, tokenizer, input names), shared per ONNX file
        self._workers: tuple = ()  # one-thread sessions for passages, made on first use (see release_workers)
        # Concurrent callers' queries share runs, where that leaves each vector as it is alone: fp32 only
        # (int8 scales activations per run, so a query's vector would depend on the others').
        self.query_batches: BatchQueue[str, np.ndarray] | None = \
            None if quantize else BatchQueue(lambda texts: list(self._encode(texts)), max_items=batch_size)

    def _load(self):
        if self._loaded is None:
            with _LOAD_LOCK:  # one export and one session, however many requests arrive first
                if self.onnx_file:
                    self._loaded = _load_session(str(self.onnx_file), str(self.path), self.max_seq_length)
                else:
                    self._loaded = load_exported(self.path, self.quantize, self.max_seq_length)
        return self._loaded

    def _encode(self, texts: Sequence[str], show_progress: bool = False, parallel: bool = False) -> np.ndarray:
        """Unit vectors of ``texts``, in runs of ``batch_size`` longest first; with ``parallel``, the runs
        shared among one single-threaded session a core (see :data:`MAX_PASSAGE_WORKERS`)."""
        from tqdm.auto import tqdm

        session, tokenizer, names = self._load()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        runs = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        progress = tqdm(total=len(runs), desc="embedding", unit="batch", disable=not show_progress or len(runs) < 2)

        def encode(session, rows: np.ndarray) -> None:
            enc = tokenizer([texts[i] for i in rows])
            hidden = session.run(None, {n: enc[n] for n in names})[0]
            pooled = mean_pool(hidden, enc["attention_mask"])
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            progress.update()

        workers = min(self.threads or usable_cores(), MAX_PASSAGE_WORKERS, len(runs)) if parallel else 1
        if not runs:
            return out
        with progress:
            if workers < 2 and not (parallel and self.threads):  # the shared session uses every core
                for rows in runs:
                    encode(session, rows)
                return out
            from concurrent.futures import ThreadPoolExecutor

            with _LOAD_LOCK:
                if len(self._workers) < workers:
                    file = str(self.onnx_file or exported_model(self.path, self.quantize))
                    self._workers = _worker_sessions(file, workers)
                sessions = self._workers
            def work(k: int) -> None:  # session k takes every workers-th run
                for rows in runs[k::workers]:
                    encode(sessions[k], rows)

            if workers < 2:
                work(0)
                return out
            with ThreadPoolExecutor(workers) as pool:  # ONNX Runtime lets go of the GIL while it runs
                list(pool.map(work, range(workers)))  # list(): a worker's error is raised here
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if self.query_batches is None or not texts:
            return self._encode(list(texts))
        return np.vstack(self.query_batches.submit(list(texts)))

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(list(texts), show_progress, parallel=True)

    def release_workers(self) -> None:
        """Let go of the passage sessions (an index build calls this when it ends); queries keep theirs."""
        with _LOAD_LOCK:
            self._workers = ()
