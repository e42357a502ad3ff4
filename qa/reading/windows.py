"""Question + passage sliding windows: the one featurization the reader and the trainer share.

A question is cut to its first ``max_query_length`` tokens; each (question, context) pair becomes
``[CLS] question [SEP] context-part [SEP]`` windows of at most ``max_length`` tokens, consecutive
windows overlapping by ``stride`` context tokens. Training labels and reads both come from here, so
what the model was trained on and what it is asked can't drift apart.

The Hugging Face fast tokenizer keeps truncation and padding in shared, mutable state that each call
rewrites, which races between threads. :class:`WindowTokenizer` instead holds two private copies of
the backend tokenizer, configured once and never changed, so one instance serves any number of threads.

Example:
    >>> windows = WindowTokenizer(tokenizer, max_length=384, stride=128, max_query_length=64)
    >>> w = windows.windows(["When do trusts go live?"], ["They go live in April 2000."])[0]
    >>> [w.offsets[k] for k in w.context_tokens][:2]
    [(0, 4), (5, 7)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Window:
    """One window of one (question, context) pair.

    Attributes:
        sample: index of the pair in the call's inputs.
        input_ids, token_type_ids: the model inputs, unpadded.
        offsets: (start, end) character offsets of each token: in the context for context tokens,
            in the question for question tokens, (0, 0) for special tokens.
        context_tokens: indices of the tokens that come from the context, in order.
    """

    sample: int
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    context_tokens: tuple[int, ...]


class WindowTokenizer:
    """Cuts questions and windows (question, context) pairs; thread-safe.

    Args:
        tokenizer: a Hugging Face fast tokenizer (its ``backend_tokenizer`` is copied, never changed).
        max_length: most tokens in a window, special tokens included.
        stride: context tokens shared by consecutive windows of one context.
        max_query_length: most question tokens kept.
    """

    def __init__(self, tokenizer, max_length: int, stride: int, max_query_length: int):
        from tokenizers import Tokenizer

        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("WindowTokenizer needs a fast (Rust) tokenizer with a tokenizer.json")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.stride = stride
        self.max_query_length = max_query_length
        self.pad_id = tokenizer.pad_token_id
        spec = tokenizer.backend_tokenizer.to_str()
        self._questions = Tokenizer.from_str(spec)
        self._questions.no_padding()
        self._questions.enable_truncation(max_query_length)
        self._pairs = Tokenizer.from_str(spec)
        self._pairs.no_padding()
        self._pairs.enable_truncation(max_length, stride=stride, strategy="only_second", direction="right")

    def cut_question(self, question: str) -> str:
        """``question`` up to the end of its ``max_query_length``-th token (the text itself, not re-spelled)."""
        offsets = self._questions.encode(question, add_special_tokens=False).offsets
        return question[: offsets[-1][1]] if offsets else question

    def windows(self, questions: Sequence[str], contexts: Sequence[str]) -> list[Window]:
        """All windows of every (question, context) pair, pair by pair, in context order."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions for {len(contexts)} contexts")
        pairs = [(self.cut_question(q), c) for q, c in zip(questions, contexts)]
        out = []
        for sample, encoding in enumerate(self._pairs.encode_batch(pairs)):
            for w in (encoding, *encoding.overflowing):
                context = tuple(k for k, s in enumerate(w.sequence_ids) if s == 1)
                out.append(Window(sample, tuple(w.ids), tuple(w.type_ids), tuple(w.offsets), context))
        return out


# A forward pass's fixed cost, in the padded tokens that cost as much: a run is cut only where its padding
# would cost more than one more pass (python -m benchmarks.speed forward; docs/performance.md).
RUN_COST_TOKENS = 40


def length_runs(lengths: Sequence[int], run_cost: int = RUN_COST_TOKENS) -> list[list[int]]:
    """Split rows into runs of similar length, so that few padding tokens are computed.

    Rows are sorted by length and cut into contiguous runs that minimise the tokens computed (each run
    pads to its longest row) plus ``run_cost`` per run: a question's windows of 60 to 380 tokens go
    through the model in two or three runs instead of one padded to 380.

    Returns:
        The rows' indices, one list per run, shortest rows first.

    Example:
        >>> length_runs([170, 30, 172, 35])
        [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sizes = [lengths[i] for i in order]
    cost, cut = [0.0] + [float("inf")] * len(sizes), [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):  # cost[end]: the best split of the shortest `end` rows
        for start in range(end):
            c = cost[start] + (end - start) * sizes[end - 1] + run_cost
            if c < cost[end]:
                cost[end], cut[end] = c, start
    runs, end = [], len(sizes)
    while end:
        runs.append(order[cut[end]:end])
        end = cut[end]
    return runs[::-1]


def pad_batch(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad (input_ids, token_type_ids) rows to the longest one.

    Returns:
        ``input_ids``, ``token_type_ids`` and ``attention_mask`` as int64 arrays (training wraps them with
        ``torch.from_numpy``; the runtimes take them as they are).
    """
    width = max(len(ids) for ids, _ in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for row, (input_ids, type_ids) in enumerate(rows):
        n = len(input_ids)
        ids[row, :n] = input_ids
        types[row, :n] = type_ids
        mask[row, :n] = 1
    return ids, types, mask
