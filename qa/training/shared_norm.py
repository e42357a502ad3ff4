"""Shared normalisation: one softmax over every passage a question is read against.

Trained one window at a time, a reader learns to find the answer *given* that the window holds it; its
scores then don't compare across passages, and a confident span in a wrong passage wins. With shared
normalisation (Clark & Gardner 2018) the start (and end) logits of all windows of one question, their
[CLS] "no answer" positions included, go through one softmax, and the loss is minus the log of the
probability mass on the gold positions:

- an answerable question: every token where a gold answer starts (ends), in every window that holds it
  whole (overlapping passages can hold it twice);
- an unanswerable question: the [CLS] position of every window.

Only [CLS] and the passage's own tokens compete (question tokens and padding are masked out), which is
what the reader reads at answer time. So a span's ``start + end`` logit means the same in every passage,
which is how :mod:`qa.reading.reader` ranks spans across passages.

Example:
    >>> feats = featurize_groups(tokenizer, groups, cfg)
    >>> batch = collate_groups(feats, [0, 1, 2, 3], tokenizer.pad_token_id)
    >>> loss = shared_loss(start_logits, batch.allowed, batch.gold_start, batch.group)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from qa.reading.windows import WindowTokenizer
from qa.training.config import TrainConfig
from qa.training.distill import align
from qa.training.passages import PassageGroup

NEG = -1e4  # a logit no position reaches: masked positions get this


def _token_span(offsets, context, start: int, end: int) -> tuple[int, int] | None:
    """Token indices of the first and last token of characters ``[start, end)``, or None if the window
    doesn't hold them whole."""
    if not context or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return None
    s = next(k for k in context if offsets[k][1] > start)
    e = next(k for k in reversed(context) if offsets[k][0] < end)
    return (s, e) if s <= e else None


def featurize_groups(tokenizer, groups: Sequence[PassageGroup], cfg: TrainConfig,
                     teacher_tokenizer=None) -> list[dict]:
    """Each group's windows with their allowed and gold positions.

    A feature is ``{"windows": [{"input_ids", "token_type_ids", "context", "starts", "ends"}], "kind"}``;
    ``context`` lists the window's passage tokens, ``starts``/``ends`` the gold positions ([0], the [CLS]
    token, for an unanswerable question). An answerable group none of whose windows holds an answer whole
    is left out. With ``teacher_tokenizer``, a feature also holds ``"teacher"``: the teacher's own windows of
    the same passages and where each student position is in them (:func:`qa.training.distill.align`).
    """
    windower = WindowTokenizer(tokenizer, cfg.max_length, cfg.stride, cfg.max_query_length)
    teacher = WindowTokenizer(teacher_tokenizer, cfg.max_length, cfg.stride, cfg.max_query_length) \
        if teacher_tokenizer is not None else None
    feats = []
    for g in groups:
        windows = []
        student = windower.windows([g.question] * len(g.passages), list(g.passages))
        for w in student:
            starts, ends = [], []
            for s, e in g.answers[w.sample]:
                span = _token_span(w.offsets, w.context_tokens, s, e)
                if span:
                    starts.append(span[0])
                    ends.append(span[1])
            if g.is_impossible:
                starts, ends = [0], [0]
            windows.append({"input_ids": w.input_ids, "token_type_ids": w.token_type_ids,
                            "context": w.context_tokens, "starts": starts, "ends": ends})
        if any(w["starts"] for w in windows):
            feats.append({"windows": windows, "kind": g.kind})
            if teacher is not None:
                theirs = teacher.windows([g.question] * len(g.passages), list(g.passages))
                feats[-1]["teacher"] = {"windows": [(w.input_ids, w.token_type_ids) for w in theirs],
                                        "map": align(student, theirs)}
    return feats


def group_batches(feats: Sequence[dict], windows_per_batch: int, rng: random.Random) -> list[list[int]]:
    """Batches of whole groups, about ``windows_per_batch`` windows each, grouped by length (little padding)."""
    order = list(range(len(feats)))
    rng.shuffle(order)
    longest = lambda k: max(len(w["input_ids"]) for w in feats[k]["windows"])  # noqa: E731
    batches: list[list[int]] = []
    mega = 200
    for i in range(0, len(order), mega):
        current, count = [], 0
        for k in sorted(order[i : i + mega], key=longest):
            n = len(feats[k]["windows"])
            if current and count + n > windows_per_batch:
                batches.append(current)
                current, count = [], 0
            current.append(k)
            count += n
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


@dataclass
class GroupBatch:
    """Padded windows of several groups; ``group[i]`` is window i's group (0 .. groups-1)."""

    input_ids: object
    token_type_ids: object
    attention_mask: object
    allowed: object  # bool [windows, length]: [CLS] and passage tokens
    gold_start: object  # bool [windows, length]
    gold_end: object
    group: object  # long [windows]
    groups: int


def collate_groups(feats: Sequence[dict], indices: Sequence[int], pad_id: int) -> GroupBatch:
    import torch

    from qa.reading.windows import pad_batch

    windows = [(n, w) for n, k in enumerate(indices) for w in feats[k]["windows"]]
    ids, types, mask = (torch.from_numpy(a) for a in
                        pad_batch([(w["input_ids"], w["token_type_ids"]) for _, w in windows], pad_id))
    allowed = torch.zeros(ids.shape, dtype=torch.bool)
    gold_start = torch.zeros(ids.shape, dtype=torch.bool)
    gold_end = torch.zeros(ids.shape, dtype=torch.bool)
    for row, (_, w) in enumerate(windows):
        allowed[row, 0] = True
        allowed[row, list(w["context"])] = True
        gold_start[row, w["starts"]] = True
        gold_end[row, w["ends"]] = True
    group = torch.tensor([n for n, _ in windows], dtype=torch.long)
    return GroupBatch(ids, types, mask, allowed, gold_start, gold_end, group, len(indices))


def shared_loss(logits, allowed, gold, group, groups: int):
    """Mean over groups of ``-log P(gold positions)`` under one softmax per group over its allowed positions.

    Args:
        logits: float [windows, length] start (or end) logits.
        allowed, gold: bool [windows, length]; gold must be a subset of allowed.
        group: long [windows], each window's group in ``0 .. groups-1``.
    """
    import torch

    x = logits.float().masked_fill(~allowed, NEG)
    per_window_all = torch.logsumexp(x, dim=1)
    per_window_gold = torch.logsumexp(x.masked_fill(~gold, NEG), dim=1)
    losses = []
    for g in range(groups):
        rows = group == g
        losses.append(torch.logsumexp(per_window_all[rows], 0) - torch.logsumexp(per_window_gold[rows], 0))
    return torch.stack(losses).mean()
