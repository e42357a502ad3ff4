"""Checkpoints of a training run: the run's identity, what may be resumed, and a swap that is never half done.

A checkpoint lives in ``OUT/checkpoint`` with the run's identity in ``run.json``; a new one is
written to ``checkpoint.tmp`` and swapped in by renames via ``checkpoint.old``, and
:func:`_recover_checkpoint` finishes or undoes a swap cut short.

Example:
    >>> saved = json.loads(Path("runs/reader/checkpoint/run.json").read_text())
    >>> identity_differences(saved, run_identity(["squad.json"], TrainConfig(), max_examples=None))
    ['seed 13 -> 14']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from qa.errors import UnsafeDestination
from qa.training.config import TrainConfig

SUMMARY_FILE = "training_summary.json"  # written once training finished
CHECKPOINT = "checkpoint"  # folder in the output folder; swapped via checkpoint.tmp and checkpoint.old
RUN_FILE = "run.json"  # in a checkpoint: the identity of the run it belongs to
_CHECKPOINT_FILES = {"config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                     "state.pt", RUN_FILE}


# Settings that do not change what is trained (or are compared on their own): a checkpoint resumes across them.
_NOT_IDENTITY = ("data", "groups", "base_model", "seed", "checkpoint_minutes", "stop_at_step")  # groups: by content


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
    if not cfg.teacher:  # no distillation: its settings change nothing (and checkpoints older than them resume)
        for k in ("teacher", "distill_weight", "temperature", "teacher_on_unanswerable"):
            settings.pop(k, None)
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
