"""Distillation: the reader also learns a larger teacher's span scores over a question's passages.

A trained teacher (a larger reader, e.g. all-mpnet-base-v2 trained with ``qa train-reader``) reads the
same passages as the student. Its start (end) logits at the student's allowed positions (each window's
[CLS] and passage tokens) go through one softmax per question at temperature ``T``, as the student's do
under shared normalisation (:mod:`qa.training.shared_norm`), and the student is also trained towards that
distribution (Hinton et al. 2015; for span readers, TinyBERT and DistilBERT's SQuAD runs):

    loss = (1 - w) * shared_loss + w * T^2 * KL(teacher_T || student_T)

The teacher tokenizes on its own (its special tokens differ: MPNet reads ``<s> q </s></s> p </s>``); its
tokens are matched to the student's by character offsets in the passage, which is exact when both share
a vocabulary (all-MiniLM-L6-v2 and all-mpnet-base-v2 both cut text with BERT's uncased WordPiece). A
student token with no teacher token at its offset (the two cut a long passage into other windows) is
left out of both distributions. The teacher runs in each step, under no_grad: nothing is cached, so a
run resumes as any other.

A teacher trained one paragraph at a time has no "no answer" side: on an unanswerable question it still
puts its mass on spans, and learning those scores there teaches the student to answer what it should
refuse. So by default the teacher's scores are learnt only on questions with an answer
(:func:`answerable_groups`); unanswerable ones keep the gold loss alone, all its mass on [CLS]. That alone
does not keep a student refusing: a teacher sure of its spans on answerable questions still pulls the
no-answer option down (model card, "Second distillation").

Example:
    >>> feats = featurize_groups(tokenizer, groups, cfg, teacher_tokenizer=teacher_tok)
    >>> teacher_start, teacher_end = teacher_logits(teacher, feats, batch_indices, pad_id, batch.input_ids.shape)
    >>> loss = distill_loss(out.start_logits, teacher_start, batch.allowed, batch.group, batch.groups, 2.0)
"""

from __future__ import annotations

import inspect
from typing import Sequence

NEG = -1e4  # as in qa.training.shared_norm: a logit no position reaches


def align(student_windows: Sequence, teacher_windows: Sequence) -> list[list[tuple[int, int, int]]]:
    """For each student window, ``(student position, teacher window, teacher position)`` of its [CLS] and of
    every passage token the teacher has at the same character offset of the same passage.

    Windows are :class:`qa.reading.windows.Window` (``sample`` is the passage). A student window's [CLS]
    maps to the [CLS] of the teacher window of its passage that holds most of its tokens.
    """
    where: dict[tuple[int, int, int], tuple[int, int]] = {}
    for t, tw in enumerate(teacher_windows):
        for k in tw.context_tokens:
            where.setdefault((tw.sample, *tw.offsets[k]), (t, k))
    out = []
    for sw in student_windows:
        pairs = [(k, *where[(sw.sample, *sw.offsets[k])]) for k in sw.context_tokens
                 if (sw.sample, *sw.offsets[k]) in where]
        if pairs:
            counts: dict[int, int] = {}
            for _, t, _ in pairs:
                counts[t] = counts.get(t, 0) + 1
            best = max(counts, key=lambda t: (counts[t], -t))
            pairs.insert(0, (0, best, 0))
        out.append(pairs)
    return out


def teacher_logits(teacher, feats: Sequence[dict], indices: Sequence[int], pad_id: int, shape) -> tuple:
    """The teacher's start and end logits laid out as the student's batch of ``feats[indices]`` windows
    (``shape``: the student batch's [windows, length]); positions with no teacher token hold :data:`NEG`.

    Each feature carries ``"teacher"``: ``{"windows": [(input_ids, token_type_ids)], "map": [[(s, t, k)]]}``
    (see :func:`qa.training.shared_norm.featurize_groups`).
    """
    import torch

    from qa.reading.windows import pad_batch

    rows, offsets = [], []
    for k in indices:
        offsets.append(len(rows))
        rows.extend(feats[k]["teacher"]["windows"])
    ids, types, mask = (torch.from_numpy(a) for a in pad_batch(rows, pad_id))
    kwargs = {"token_type_ids": types} if "token_type_ids" in inspect.signature(teacher.forward).parameters else {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = teacher(input_ids=ids, attention_mask=mask, **kwargs)
    t_start, t_end = out.start_logits.float(), out.end_logits.float()
    start = torch.full(tuple(shape), NEG)
    end = torch.full(tuple(shape), NEG)
    row = 0
    for k, first in zip(indices, offsets):
        for pairs in feats[k]["teacher"]["map"]:
            if pairs:
                s, t, p = (torch.tensor(x) for x in zip(*pairs))
                start[row, s] = t_start[first + t, p]
                end[row, s] = t_end[first + t, p]
            row += 1
    return start, end


def answerable_groups(gold, group, groups: int):
    """bool [groups]: whether each group's gold positions include a passage token (not only [CLS])."""
    import torch

    has_span = gold[:, 1:].any(dim=1)
    return torch.zeros(groups, dtype=torch.bool).index_put_((group,), has_span, accumulate=True)


def distill_loss(student, teacher, allowed, group, groups: int, temperature: float = 2.0, keep=None):
    """Mean over groups of ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, one softmax per group
    over the positions both allow (``allowed`` and a teacher logit above :data:`NEG`).

    Args:
        student, teacher: float [windows, length] start (or end) logits.
        allowed: bool [windows, length], the student's allowed positions.
        group: long [windows], each window's group in ``0 .. groups-1``.
        keep: optional bool [groups]; groups marked False are left out (e.g. :func:`answerable_groups`).
    """
    import torch

    both = allowed & (teacher > NEG / 2)
    s = (student.float() / temperature).masked_fill(~both, NEG)
    t = (teacher.float() / temperature).masked_fill(~both, NEG)
    losses = []
    for g in range(groups):
        rows = group == g
        if (keep is not None and not keep[g]) or not both[rows].any():
            continue
        log_s = torch.log_softmax(s[rows].flatten(), 0)
        log_t = torch.log_softmax(t[rows].flatten(), 0)
        keep = both[rows].flatten()
        p_t = log_t[keep].exp()
        losses.append((p_t * (log_t[keep] - log_s[keep])).sum() * temperature ** 2)
    if not losses:
        return student.sum() * 0.0
    return torch.stack(losses).mean()
