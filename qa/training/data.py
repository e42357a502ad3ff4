"""SQuAD-format examples (:mod:`qa.squad`) made into training data: windows, batches, validation files.

Example:
    >>> features = featurize(tokenizer, dedupe(load_squad("squad-v1.1-dev.json")), TrainConfig(), rng)
    >>> batches = length_grouped_batches(features, batch_size=32, rng=rng)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from qa.reading.windows import WindowTokenizer, pad_batch
from qa.squad import SquadExample
from qa.training.config import TrainConfig


def write_validation_sets(examples: Sequence[SquadExample], out_dir: str | Path) -> list[Path]:
    """Write held-out examples as SQuAD 2.0 JSON, one file per source, for ``qa eval squad``."""
    folder = Path(out_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, dict[tuple[str, str], list[SquadExample]]] = {}
    for ex in examples:
        by_source.setdefault(ex.source, {}).setdefault((ex.title, ex.context), []).append(ex)
    written = []
    for source, groups in sorted(by_source.items()):
        articles: dict[str, list[dict]] = {}
        for (title, context), exs in groups.items():
            qas = [{"id": e.id, "question": e.question, "is_impossible": e.is_impossible,
                    "answers": [{"text": t, "answer_start": a} for t, a in e.answers]} for e in exs]
            articles.setdefault(title, []).append({"context": context, "qas": qas})
        data = [{"title": t, "paragraphs": ps} for t, ps in articles.items()]
        path = folder / source
        path.write_text(json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False), encoding="utf-8")
        written.append(path)
    return written


def featurize(
    tokenizer, examples: Sequence[SquadExample], cfg: TrainConfig, rng: random.Random
) -> list[dict]:
    """Turn examples into training windows with start/end token labels (CLS when absent).

    The windows are :class:`~qa.reading.windows.WindowTokenizer`'s, the very ones the reader reads.
    """
    windower = WindowTokenizer(tokenizer, cfg.max_length, cfg.stride, cfg.max_query_length)
    features: list[dict] = []
    batch = 256
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        by_example: dict[int, list[dict]] = {}
        for window in windower.windows([ex.question for ex in chunk], [ex.context for ex in chunk]):
            ex = chunk[window.sample]
            ctx, offsets = window.context_tokens, window.offsets
            start_tok = end_tok = 0
            if ex.answers and ctx:
                text, a_start = ex.answers[0]
                a_end = a_start + len(text)
                if offsets[ctx[0]][0] <= a_start and offsets[ctx[-1]][1] >= a_end:
                    start_tok = next(k for k in ctx if offsets[k][1] > a_start)
                    end_tok = next(k for k in reversed(ctx) if offsets[k][0] < a_end)
            feat = {
                "input_ids": list(window.input_ids),
                "token_type_ids": list(window.token_type_ids),
                "start": start_tok,
                "end": end_tok,
            }
            by_example.setdefault(window.sample, []).append(feat)
        for ex_idx, feats in by_example.items():
            if chunk[ex_idx].is_impossible:
                features.extend(feats)
                continue
            positive = [f for f in feats if f["start"] > 0]
            negative = [f for f in feats if f["start"] == 0]
            rng.shuffle(negative)
            features.extend(positive + negative[: cfg.negative_windows_per_question])
    return features


def length_grouped_batches(features: list[dict], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within mega-batches by length, and shuffle the batches (little padding)."""
    order = list(range(len(features)))
    rng.shuffle(order)
    mega = batch_size * 50
    batches = []
    for i in range(0, len(order), mega):
        group = sorted(order[i : i + mega], key=lambda k: len(features[k]["input_ids"]))
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def collate(features: list[dict], indices: list[int], pad_id: int):
    """One padded batch: input ids, token types, attention mask, start and end labels (tensors)."""
    import torch

    ids, types, mask = (torch.from_numpy(a) for a in
                        pad_batch([(features[k]["input_ids"], features[k]["token_type_ids"]) for k in indices], pad_id))
    starts = torch.tensor([features[k]["start"] for k in indices])
    ends = torch.tensor([features[k]["end"] for k in indices])
    return ids, types, mask, starts, ends
