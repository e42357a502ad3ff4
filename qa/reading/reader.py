"""Extractive span reader: finds the short answer inside retrieved passages.

All windows of one question (each passage, cut into overlapping windows when long) go through the
model together, in runs of similar length so that little padding is computed (on fp32 a window's logits
don't depend on its run). Spans are decoded over context tokens only,
mapped back to character offsets in the original document, and equal answers found in several
passages are merged.

Spans are ranked across all windows of a question by ``sigmoid(0.1 * (start logit + end logit))``, as
Haystack's ExtractiveReader scores them: raw logits compare across windows, where a probability within
each window would let a confident span in a passage that doesn't answer beat a right one elsewhere.

The model runs on ONNX Runtime or torch (``runtime``, see :mod:`qa.reading.runtimes`). Questions read
at the same time from several threads share forward passes: their windows go through the model
together (:class:`qa.batching.BatchQueue`); each question still gets the logits of its own
windows, decoded in its own thread, and exactly the answer it gets alone: on runtimes whose logits
depend on the batch (bf16, int8) questions are not mixed, only run one after another.

Example:
    >>> from qa.reading.reader import Reader
    >>> result = Reader.load().read("When do PCTs go live?", [passage])
    >>> result.spans[0].text
    'April 2000'
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.errors import MissingPath
from qa.batching import DEFAULT_MAX_WAIT_S, BatchQueue
from qa.reading.names import DEFAULT_READER, READER_NAMES
from qa.reading.runtimes import BATCH_INVARIANT, DEFAULT_RUNTIME, check_runtime, load_span_model, load_tokenizer
from qa.reading.windows import Window, WindowTokenizer, length_runs, pad_batch
from qa.types import Passage, Span

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
READER_DIRS = {name: MODELS_DIR / f"{name}-reader" for name in READER_NAMES}
DEFAULT_READER_DIR = READER_DIRS[DEFAULT_READER]
MAX_ANSWER_TOKENS = 30
TOP_CANDIDATES = 20  # best start and end positions considered per window
LOGIT_SCALE = 0.1  # sigmoid(LOGIT_SCALE * (start + end logit)): Haystack's calibration factor
MAX_BATCH_WINDOWS = 32  # windows read together (in runs of similar length), from all the questions read at once


@dataclass(frozen=True)
class ReaderResult:
    """Candidate answers, best first, and the probability that the passages hold no answer."""

    spans: list[Span]
    no_answer_score: float


@dataclass(frozen=True)
class WindowSpan:
    """A span decoded from one window, in the window's context character offsets."""

    start: int
    end: int
    score: float


def reader_dir(reader: str | Path | None = None) -> Path:
    """The folder of a reader given by name (``fast``, ``accurate``), by folder, or ``None`` for the default.

    Raises:
        MissingPath: neither a shipped reader's name nor a folder holding a model.
    """
    if reader is None:
        return READER_DIRS[DEFAULT_READER]
    if str(reader) in READER_DIRS:
        path = READER_DIRS[str(reader)]
        if not (path / "config.json").is_file():
            raise MissingPath(f"The {reader} reader is not in this installation ({path} has no model): "
                              f"use --reader {'fast' if reader != 'fast' else 'accurate'} or a reader folder.")
        return path
    path = Path(reader).expanduser()
    if not (path / "config.json").is_file():
        raise MissingPath(f"No reader model at {path}: pass --reader {' or '.join(READER_DIRS)}, or a folder "
                          "that qa train-reader wrote.")
    return path


def reader_name(path: str | Path) -> str:
    """``fast`` or ``accurate`` for a shipped reader's folder, else the folder's name."""
    resolved = Path(path).resolve()
    return next((name for name, d in READER_DIRS.items() if d.resolve() == resolved), Path(path).name)


def is_packaged(path: str | Path) -> bool:
    """Whether ``path`` is the folder of a reader shipped in the package."""
    return Path(path).resolve() in {d.resolve() for d in READER_DIRS.values()}


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_tokens: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
    top_candidates: int = TOP_CANDIDATES,
    text: str | None = None,
) -> tuple[list[WindowSpan], float]:
    """Best spans of one window and its no-answer score.

    Args:
        start_logits, end_logits: one value per token of the window.
        context_tokens: indices of the tokens that belong to the passage (never the question).
        offsets: (start, end) character offsets of each token in the passage text.
        max_answer_tokens: longest span allowed, in tokens.
        top_candidates: how many best starts and ends to pair up.
        text: the passage text; when given, a span across a paragraph break (a blank line) is never an
            answer (start and end are scored apart, so a start in a heading and an end in the paragraph
            below that repeats it can pair up).

    Returns:
        Spans (start <= end, within ``max_answer_tokens``, context tokens only) sorted by score
        (``sigmoid(0.1 * (start + end logit))``), and the no-answer score (the same of the [CLS] logits).
    """
    ctx = np.asarray(context_tokens, dtype=np.int64)
    if ctx.size == 0:
        return [], 1.0
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    null = _sigmoid(LOGIT_SCALE * (start_logits[0] + end_logits[0]))
    n = min(top_candidates, ctx.size)
    best_starts = np.argsort(-start_logits[ctx])[:n]
    best_ends = np.argsort(-end_logits[ctx])[:n]
    spans = []
    for i in best_starts:
        for j in best_ends:
            # i, j index into ctx; context tokens are contiguous, so j - i is the span length - 1.
            if j < i or ctx[j] - ctx[i] + 1 > max_answer_tokens:
                continue
            start, end = offsets[ctx[i]][0], offsets[ctx[j]][1]
            if end > start and (text is None or "\n\n" not in text[start:end]):
                score = _sigmoid(LOGIT_SCALE * float(start_logits[ctx[i]] + end_logits[ctx[j]]))
                spans.append(WindowSpan(int(start), int(end), score))
    spans.sort(key=lambda s: -s.score)
    return spans, null


@functools.lru_cache(maxsize=4)
def _load(path: str, max_length: int, stride: int, max_query_length: int, runtime: str) -> tuple[WindowTokenizer, object]:
    windows = WindowTokenizer(load_tokenizer(path), max_length, stride, max_query_length)
    return windows, load_span_model(path, runtime)


def _as_numpy(logits) -> np.ndarray:
    """float32 numpy logits from a runtime's output (numpy, or a torch tensor from a stand-in model)."""
    if hasattr(logits, "detach"):
        logits = logits.detach().float().numpy()
    return np.asarray(logits, dtype=np.float32)


class Reader:
    """The span reader. The model loads on first use, once per process and path.

    Args:
        path: a shipped reader's name (``fast``, ``accurate``) or a folder with a model saved by
            :mod:`qa.training.trainer` (default: :data:`DEFAULT_READER`).
        max_answer_tokens: longest answer, in tokens.
        runtime: how the model runs, one of :data:`qa.reading.runtimes.RUNTIMES` (default: ``DEFAULT_RUNTIME``).
        max_batch_windows: most windows read together when questions are read at once. Only runtimes
            whose logits don't depend on the batch (:data:`qa.reading.runtimes.BATCH_INVARIANT`) mix
            questions; on the others each question has its own forward passes, one at a time.
        max_wait_s: longest an idle model waits for the windows of questions being tokenized.
    """

    def __init__(self, path: str | Path | None = None, max_answer_tokens: int = MAX_ANSWER_TOKENS,
                 runtime: str | None = None, max_batch_windows: int = MAX_BATCH_WINDOWS,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S):
        self.runtime = check_runtime(DEFAULT_RUNTIME if runtime is None else runtime)
        self.path = reader_dir(path)
        self.name = reader_name(self.path)
        settings_file = self.path / "reader_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        self.max_length = int(settings.get("max_length", 384))
        self.stride = int(settings.get("stride", 128))
        self.max_query_length = int(settings.get("max_query_length", 64))
        self.max_answer_tokens = max_answer_tokens
        self._lock = threading.Lock()
        self.batches: BatchQueue[Window, tuple[np.ndarray, np.ndarray]] = BatchQueue(
            self._forward, max_items=max_batch_windows if self.runtime in BATCH_INVARIANT else 1,
            max_wait_s=max_wait_s if self.runtime in BATCH_INVARIANT else 0.0)

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs) -> "Reader":
        return cls(path, **kwargs)

    def _model(self) -> tuple[WindowTokenizer, object]:
        with self._lock:  # one load even when the first requests arrive together
            return _load(str(self.path.resolve()), self.max_length, self.stride, self.max_query_length, self.runtime)

    def windows(self, question: str, texts: Sequence[str]) -> list[Window]:
        """The model's windows of ``question`` over each of ``texts`` (what :meth:`read` feeds it)."""
        return self._model()[0].windows([question] * len(texts), list(texts))

    def _forward(self, windows: list[Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start and end logits of each window (cut to its own length), from forward passes over runs of
        windows of similar length (:func:`qa.reading.windows.length_runs`: padding is computed too)."""
        windower, model = self._model()
        with_types = "token_type_ids" in windower.tokenizer.model_input_names
        logits: list[tuple[np.ndarray, np.ndarray]] = [None] * len(windows)  # type: ignore[list-item]
        for run in length_runs([len(w.input_ids) for w in windows]):
            ids, types, mask = pad_batch([(windows[i].input_ids, windows[i].token_type_ids) for i in run],
                                         windower.pad_id)
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types if with_types else None)
            starts, ends = _as_numpy(out.start_logits), _as_numpy(out.end_logits)
            for row, i in enumerate(run):
                logits[i] = (starts[row, : len(windows[i].input_ids)], ends[row, : len(windows[i].input_ids)])
        return logits

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 5) -> ReaderResult:
        """Find the best answer spans for ``question`` (as :func:`qa.answering.question.check_question` gives
        it) in ``passages``."""
        if not passages:
            return ReaderResult([], 1.0)
        with self.batches.coming():  # an idle model waits a moment for these windows rather than run alone
            windows = self.windows(question, [p.text for p in passages])
        logits = self.batches.submit(windows)
        merged: dict[str, Span] = {}
        null = 1.0
        for window, (starts, ends) in zip(windows, logits):
            passage = passages[window.sample]
            spans, window_null = decode_window(
                starts, ends, window.context_tokens, window.offsets, self.max_answer_tokens, text=passage.text,
            )
            null = min(null, window_null)
            for s in spans[:top_n]:
                text = passage.text[s.start : s.end]
                key = " ".join(text.split())  # equal answers: same words, same case (quotes stay verbatim)
                where = (passage.doc_id, passage.start + s.start, passage.start + s.end)
                if key in merged:
                    old = merged[key]
                    occurrences = old.occurrences + ((where,) if where not in old.occurrences else ())
                    if s.score > old.score:
                        merged[key] = Span(text, s.score, *where, passage.id, occurrences)
                    else:
                        merged[key] = replace(old, occurrences=occurrences)
                else:
                    merged[key] = Span(text, s.score, *where, passage.id, (where,))
        best = sorted(merged.values(), key=lambda s: -s.score)[:top_n]
        return ReaderResult(best, null)
