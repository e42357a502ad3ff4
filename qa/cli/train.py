"""``qa train-reader``: fine-tune the span reader on SQuAD-format files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qa.cli.common import at_least, more_than_zero, probability
from qa.errors import InvalidInput, MissingPath


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``qa train-reader`` to the ``qa`` command."""
    p = sub.add_parser("train-reader", help="fine-tune the span reader on SQuAD-format files")
    p.add_argument("--data", nargs="+", required=True, help="SQuAD-format JSON files")
    p.add_argument("--out", required=True, help="output folder (checkpoints resume from here)")
    p.add_argument("--base-model", default=None, help="encoder to start from (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=at_least(1), default=384)
    p.add_argument("--stride", type=at_least(0), default=128)
    p.add_argument("--batch-size", type=at_least(1), default=16)
    p.add_argument("--lr", type=more_than_zero, default=1e-4)
    p.add_argument("--epochs", type=more_than_zero, default=1.0)
    p.add_argument("--time-budget", type=more_than_zero, default=None, help="minutes; the LR schedule fits the budget")
    p.add_argument("--holdout", type=float, default=0.2, help="share of articles held out for validation")
    p.add_argument("--max-examples", type=at_least(1), default=None, help="train on at most this many questions")
    p.add_argument("--no-bf16", action="store_true", help="train in fp32")
    p.add_argument("--bf16-weights", action="store_true",
                   help="keep the model in bf16 with fp32 master weights (faster on CPUs with bf16 matrix units: "
                        "python -m benchmarks.train_speed)")
    p.add_argument("--exclude", nargs="*", default=[], help="SQuAD-format files whose questions are never "
                   "trained on (e.g. the calibrator's fit set)")
    p.add_argument("--freeze-layers", type=at_least(0), default=0, help="leave the embeddings and this many of the "
                   "lowest layers untrained (each step costs less: python -m benchmarks.train_speed --freeze N)")
    p.add_argument("--groups", default=None, help="passage groups (python -m qa.training.build_groups): train "
                   "with one softmax over each question's retrieved passages; --batch-size then counts windows")
    p.add_argument("--teacher", default=None, help="a trained reader folder whose span scores the student also "
                   "learns (distillation; with --groups)")
    p.add_argument("--distill-weight", type=probability, default=0.5,
                   help="weight of the teacher's scores against the gold answers (default: 0.5)")
    p.add_argument("--temperature", type=more_than_zero, default=2.0, help="distillation temperature (default: 2)")
    p.add_argument("--teacher-on-unanswerable", action="store_true",
                   help="also learn the teacher's scores on unanswerable questions (by default only the gold "
                   "'no answer' is learnt there: a teacher trained on one paragraph at a time never refuses)")
    p.add_argument("--seed", type=int, default=13, help="order of examples and batches (the validation split "
                   "does not depend on it); another seed when training on from a trained reader")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, train, and print the training summary."""
    missing = [f for f in [*args.data, *args.exclude] if not Path(f).is_file()]
    if missing:
        raise MissingPath(f"No file at {missing[0]}: pass --data with SQuAD-format JSON files.")
    if args.stride >= args.max_length:
        raise InvalidInput(f"--stride must be below --max-length ({args.max_length}), got {args.stride}.")
    if not 0.0 <= args.holdout < 1.0:
        raise InvalidInput(f"--holdout must be 0 or more and below 1, got {args.holdout}.")
    if args.groups is not None and not Path(args.groups).is_file():
        raise MissingPath(f"No passage groups at {args.groups}: build them with python -m qa.training.build_groups.")
    if args.teacher is not None:
        if args.groups is None:
            raise InvalidInput("--teacher needs --groups: the student learns the teacher's scores over each question's passages.")
        if not (Path(args.teacher) / "config.json").is_file():
            raise MissingPath(f"No reader at {args.teacher} (no config.json): pass a folder qa train-reader wrote.")

    from qa.training.config import TrainConfig
    from qa.training.trainer import train_reader

    cfg = TrainConfig(
        base_model=args.base_model or "", max_length=args.max_length, stride=args.stride,
        batch_size=args.batch_size, learning_rate=args.lr, epochs=args.epochs,
        time_budget_minutes=args.time_budget, holdout_fraction=args.holdout, bf16=not args.no_bf16, seed=args.seed,
        bf16_weights=args.bf16_weights, groups=args.groups or "", teacher=args.teacher or "",
        distill_weight=args.distill_weight, temperature=args.temperature,
        teacher_on_unanswerable=args.teacher_on_unanswerable, frozen_layers=args.freeze_layers,
        exclude=list(args.exclude),
    )
    summary = train_reader(args.data, args.out, cfg, max_examples=args.max_examples, show_progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0
