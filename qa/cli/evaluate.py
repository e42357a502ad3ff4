"""``qa eval``: the question set end to end, the reader on SQuAD, the retriever on BEIR.

This module parses arguments, calls :mod:`qa.evaluation` and prints; the measuring lives there.

Example:
    qa eval                                   # the question set, on embeddings/
    qa eval --calibrate                       # choose and save the no-answer threshold
    qa eval squad --data squad-v2.0-dev.json  # the reader alone, SQuAD EM/F1 with HasAns/NoAns
    qa eval beir --data beir/scifact          # the retriever alone, nDCG@10 and Recall@100 per mode
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from qa.cli.common import INDEX_HELP, check_at_least_one, check_probability, reader_runtime_arg, runtime_kwargs
from qa.errors import InvalidInput, MissingPath
from qa.evaluation.benchmarks import evaluate_squad, run_beir
from qa.evaluation.common import format_number
from qa.reading.names import DEFAULT_READER, READER_HELP
from qa.retrieval.retriever import MODES

if TYPE_CHECKING:  # the runner, report and thresholds load when a command runs, not when `qa` parses
    from qa.evaluation.runner import QuestionsResult

logger = logging.getLogger(__name__)

DEFAULT_QUESTIONS = "eval/questions.jsonl"
DEFAULT_CONVERSATIONS = "eval/conversations.jsonl"
DEFAULT_OUT = "eval/out"


def register(subparsers) -> None:
    """Add ``qa eval`` (the question set, ``squad`` or ``beir``) to the ``qa`` command."""
    p = subparsers.add_parser(
        "eval", help="measure retrieval, answers, abstention and citations",
        description="Evaluate on the question set (default), or the reader alone on SQuAD-format data "
                    "(qa eval squad --data FILE), the whole pipeline over SQuAD-format articles as a corpus "
                    "(qa eval squad --open FILE...), or the retriever alone on a BEIR folder (qa eval beir --data DIR).",
    )
    p.add_argument("benchmark", nargs="?", choices=["squad", "beir", "fit-calibrator", "conversations"], default=None,
                   help="a public benchmark instead of the question set; fit-calibrator: learn the reader's "
                        "P(right) from the predictions of earlier runs (--train FILE..., measured on --test FILE...); "
                        "conversations: every turn of the dialogues in --conversations asked alone and in context")
    p.add_argument("--questions", default=DEFAULT_QUESTIONS, help=f"question set (default: {DEFAULT_QUESTIONS})")
    p.add_argument("--conversations", default=DEFAULT_CONVERSATIONS,
                   help=f"conversations: the dialogue set (default: {DEFAULT_CONVERSATIONS})")
    p.add_argument("--index", default="embeddings", help=INDEX_HELP)
    p.add_argument("--out", default=None,
                   help=f"output folder (default: {DEFAULT_OUT}; {DEFAULT_OUT}/squad for squad, "
                        f"{DEFAULT_OUT}/beir/<data set folder name> for beir, {DEFAULT_OUT}/conversations for conversations)")
    p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: hybrid; beir: all three)")
    p.add_argument("-k", type=int, default=None,
                   help="passages given to the reader (default: as many as its calibration was fitted on)")
    p.add_argument("--threshold", type=float, default=None, help="no-answer threshold (default: calibrated)")
    reader_runtime_arg(p)
    p.add_argument("--calibrate", action="store_true", help="choose the best no-answer threshold and save it")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of the table")
    p.add_argument("--data", default=None, help="squad: a SQuAD-format JSON file; beir: a BEIR folder")
    p.add_argument("--open", nargs="+", default=None, metavar="FILE",
                   help="squad: turn these SQuAD-format (or DPR-style) files into a folder of documents, index it and "
                        "ask every question through the whole pipeline, unanswerable ones included")
    p.add_argument("--limit", type=int, default=None, help="squad/beir: only the first N questions")
    p.add_argument("--reader", default=None, metavar="NAME|DIR", help=f"{READER_HELP} (default: {DEFAULT_READER})")
    p.add_argument("--context-chars", type=int, default=None,
                   help="read each retrieved passage widened within its paragraph to this many characters "
                        "(0: as retrieved; default: what the reader's calibrator was fitted with)")
    p.add_argument("--cascade", type=int, default=None, metavar="N",
                   help="the fast reader reads the retrieved passages first and the reader only the N holding the "
                        "fast reader's best answers (0: none; default: as the reader's calibration says)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--train", nargs="+", default=None, metavar="FILE",
                   help="fit-calibrator: predictions.jsonl of open-corpus runs (or records.jsonl of qa eval) to fit on")
    p.add_argument("--test", nargs="*", default=(), metavar="FILE",
                   help="fit-calibrator: runs on other articles, to measure the calibration on")
    p.add_argument("--target-precision", type=float, default=None,
                   help="fit-calibrator: precision of answered questions the threshold is chosen for (default 0.65)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Check the argument combination and run the question set, ``squad`` or ``beir``."""
    check_probability(args.threshold, "--threshold")
    if args.limit is not None:
        check_at_least_one(args.limit, "--limit")
    if args.cascade is not None and args.cascade < 0:
        raise InvalidInput(f"--cascade must be 0 or more, got {args.cascade}.")
    if args.context_chars is not None and args.context_chars < 0:
        raise InvalidInput(f"--context-chars must be 0 or more, got {args.context_chars}.")
    if args.benchmark == "fit-calibrator":
        if not args.train:
            raise InvalidInput("qa eval fit-calibrator needs --train FILE... (predictions of open-corpus runs).")
        return _cmd_fit_calibrator(args)
    if args.benchmark == "conversations":
        if args.data is not None or args.open is not None or args.calibrate:
            raise InvalidInput("qa eval conversations takes --conversations FILE (not --data, --open or --calibrate).")
        return _cmd_conversations(args)
    if args.benchmark is None:
        if args.data is not None:
            raise InvalidInput("--data goes with a benchmark: qa eval squad --data FILE or qa eval beir --data DIR.")
        return _cmd_questions(args)
    if args.open is not None:
        if args.benchmark != "squad" or args.data is not None:
            raise InvalidInput("--open goes with squad instead of --data: qa eval squad --open FILE...")
        if args.calibrate:
            raise InvalidInput("--calibrate works on the question set only (qa eval --calibrate).")
        return _cmd_open(args)
    if args.data is None:
        what = "a SQuAD JSON file" if args.benchmark == "squad" else "a BEIR folder"
        raise InvalidInput(f"qa eval {args.benchmark} needs --data ({what}).")
    if args.calibrate:
        raise InvalidInput("--calibrate works on the question set only (qa eval --calibrate).")
    return _cmd_squad(args) if args.benchmark == "squad" else _cmd_beir(args)


def print_metrics(metrics: dict, table: str, as_json: bool) -> None:
    print(json.dumps(metrics, indent=2, ensure_ascii=False) if as_json else table)


# ---------------------------------------------------------------------------------- the question set


def _cmd_questions(args: argparse.Namespace) -> int:
    from qa.evaluation.report import format_table
    from qa.evaluation.runner import evaluate_questions, load_questions, write_outputs
    from qa.answering.pipeline import QA

    questions = load_questions(args.questions)
    qa = QA.load(args.index, reader=args.reader, threshold=args.threshold, context_chars=args.context_chars,
                 cascade=args.cascade, **runtime_kwargs(args))
    mode = args.mode or "hybrid"
    result = evaluate_questions(qa, questions, k=args.k, mode=mode, show_progress=not args.quiet)
    result.metrics["config"].update(questions=str(args.questions), index=str(args.index), reader=str(qa.reader.path))
    if args.calibrate:
        result.metrics["calibration"] = _calibrate(result, args, qa)
    paths = write_outputs(result, args.out or DEFAULT_OUT)
    print_metrics(result.metrics, format_table(result.metrics), args.json)
    if not args.json:
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
        if args.calibrate:
            print(_calibration_table(result.metrics["calibration"]))
    return 0


def _cmd_conversations(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA
    from qa.evaluation.conversations import (evaluate_conversations, format_conversation_table, load_conversations,
                                             write_conversation_outputs)

    conversations = load_conversations(args.conversations)
    qa = QA.load(args.index, reader=args.reader, threshold=args.threshold, cascade=args.cascade,
                 **runtime_kwargs(args))
    result = evaluate_conversations(qa, conversations, k=args.k, mode=args.mode or "hybrid",
                                    show_progress=not args.quiet)
    result.metrics["config"].update(conversations_file=str(args.conversations), index=str(args.index),
                                    reader=str(qa.reader.path))
    paths = write_conversation_outputs(result, args.out or f"{DEFAULT_OUT}/conversations")
    print_metrics(result.metrics, format_conversation_table(result.metrics), args.json)
    if not args.json:
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _calibrate(result: QuestionsResult, args: argparse.Namespace, qa) -> dict:
    """Choose the threshold on this run and save it with the reader the run used (``qa.reader.path``)."""
    from qa.answering.pipeline import save_calibration
    from qa.evaluation.runner import rethreshold, summarize
    from qa.evaluation.thresholds import calibration_threshold, candidates_of
    from qa.reading.reader import is_packaged

    reader_dir = Path(qa.reader.path)
    threshold, best = calibration_threshold(candidates_of(result.records))
    after = summarize(rethreshold(result.records, threshold))
    details = {
        "method": "SQuAD 2.0 best threshold (find_best_thresh) on the question set, halfway to the next lower score",
        "reader": str(reader_dir), "questions": str(args.questions), "n": len(result.records), "index": str(args.index),
        "mode": result.metrics["config"]["mode"], "k": result.metrics["config"]["k"],
        "previous_threshold": result.metrics["config"]["threshold"],
        "before": _headline(result.metrics), "after": _headline(after), "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # The packaged reader's calibration.json is written only when the run used the packaged reader.
    path = save_calibration(threshold, details, reader_dir, allow_packaged=is_packaged(reader_dir))
    logger.info("saved threshold %.4f to %s", threshold, path)
    return {"threshold": threshold, "overall_f1": best, "file": str(path), **details}


def _headline(m: dict) -> dict:
    answers = m["answers"] or {}
    return {"overall_f1": m["overall"]["f1"], "em": answers.get("em"), "f1": answers.get("f1"), **m["abstention"]}


def _calibration_table(cal: dict) -> str:
    lines = [f"calibrated threshold: {cal['previous_threshold']:.4f} -> {cal['threshold']:.4f} (saved to {cal['file']})",
             f"{'':28}{'before':>10}{'after':>10}"]
    for key in ("overall_f1", "em", "f1", "unanswerable_refused", "answerable_wrongly_refused"):
        lines.append(f"{key:28}{format_number(cal['before'][key]):>10}{format_number(cal['after'][key]):>10}")
    lines.append("(chosen and measured on the same questions: the 'after' column is optimistic)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- qa eval squad | beir


def _cmd_squad(args: argparse.Namespace) -> int:
    from qa.reading.reader import Reader
    from qa.squad import dedupe, load_squad

    examples = dedupe(load_squad(args.data))[: args.limit]
    reader = Reader.load(args.reader, runtime=getattr(args, "reader_runtime", None))
    threshold = args.threshold
    if threshold is None and any(ex.is_impossible for ex in examples):
        from qa.answering.pipeline import default_threshold, load_calibration

        threshold = default_threshold(load_calibration(reader.path))  # this reader's calibration
    metrics, predictions = evaluate_squad(reader, examples, threshold, show_progress=not args.quiet)
    metrics.update(data=str(args.data), reader=str(reader.path))
    out = Path(args.out or f"{DEFAULT_OUT}/squad")
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(predictions, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    table = "\n".join(f"{key:22}{format_number(value, 2) if isinstance(value, float) else value}" for key, value in metrics.items())
    print_metrics(metrics, table + f"\nwrote {out / 'predictions.json'}, {out / 'metrics.json'}", args.json)
    return 0


def _cmd_open(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA
    from qa.evaluation.open_corpus import evaluate_open_corpus
    from qa.jsonl import write_jsonl

    for f in args.open:
        if not Path(f).is_file():
            raise MissingPath(f"No such file: {f} (qa eval squad --open takes SQuAD-format JSON files).")
    out = Path(args.out or f"{DEFAULT_OUT}/open/{Path(args.open[0]).stem}")
    metrics, rows = evaluate_open_corpus(
        args.open, out, load_qa=lambda index: QA.load(index, reader=args.reader, threshold=args.threshold,
                                          context_chars=args.context_chars, cascade=args.cascade,
                                          **runtime_kwargs(args)),
        top_k=args.k, limit=args.limit, gold_passage=True, show_progress=not args.quiet)
    write_jsonl(out / "predictions.jsonl", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    shown = {k: v for k, v in metrics.items() if k not in ("risk_coverage", "selective", "files")}
    shown.update({f"selective {k}": v for k, v in metrics["selective"].items() if k != "questions"})
    table = "\n".join(f"{key:28}{format_number(value, 3) if isinstance(value, float) else value}"
                      for key, value in shown.items())
    print_metrics(metrics, table + f"\nwrote {out / 'predictions.jsonl'}, {out / 'metrics.json'}", args.json)
    return 0


def _cmd_fit_calibrator(args: argparse.Namespace) -> int:
    """Fit on --train rows, save into the reader's calibration.json, print the figures on --test rows."""
    from qa.answering.calibrator import Calibrator
    from qa.answering.pipeline import save_calibration
    from qa.evaluation.calibration_fit import TARGET_PRECISION, fit, load_rows, measure, reliability_table
    from qa.reading.reader import is_packaged, reader_dir as resolve_reader

    target = TARGET_PRECISION if args.target_precision is None else args.target_precision
    if not 0.0 < target < 1.0:
        raise InvalidInput(f"--target-precision must be between 0 and 1, got {target}.")
    for f in [*args.train, *args.test]:
        if not Path(f).is_file():
            raise MissingPath(f"No such file: {f} (give the predictions.jsonl of earlier runs).")
    reader_dir = resolve_reader(args.reader)
    try:
        train, test = load_rows(args.train), {f: load_rows([f]) for f in args.test}
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    calibration = fit(train, target_precision=target)
    calibration["context_chars"] = runs_context_chars(args.train, args.context_chars)
    calibration["top_k"] = runs_top_k(args.train, args.k)
    cascade = runs_cascade(args.train)
    if cascade:
        calibration["cascade"] = cascade
    calibrator, picks = Calibrator.from_dict(calibration["calibrator"]), calibration["picks"]
    report = {"train": measure(train, calibrator, calibration["threshold"], calibration["bands"], picks),
              **{f"test {f}": measure(rows, calibrator, calibration["threshold"], calibration["bands"], picks)
                 for f, rows in test.items()}}
    if test:
        # What each band means, measured on the held-out runs together: the app quotes it.
        held_out = measure([r for rows in test.values() for r in rows], calibrator, calibration["threshold"],
                           calibration["bands"], picks)
        for band in calibration["bands"]:
            stats = held_out[f"band_{band['name']}"]
            band.update(held_out_precision=stats["right"], held_out_answers=stats["answers"])
        calibration["reliability"] = reliability_table([r for rows in test.values() for r in rows], calibrator, picks)
    details = {k: v for k, v in calibration.items() if k != "threshold"}
    details.update(trained_on=[str(f) for f in args.train], measured_on=report)
    path = save_calibration(calibration["threshold"], details, reader_dir, allow_packaged=is_packaged(reader_dir),
                            replace=True)
    lines = [f"calibrator saved to {path}: threshold {calibration['threshold']:.3f} "
             f"(precision {target:.0%} on the training rows)", "largest weights (standardised):"]
    lines += [f"  {name:14}{weight:+.3f}" for name, weight in calibration["weights"]]
    keys = ("questions", "f1", "HasAns_f1", "NoAns_refused", "answerable_refused", "aurc", "ece", "coverage@90")
    lines.append(f"{'':12}" + "".join(f"{k[:12]:>13}" for k in keys) + f"{'High right':>13}")
    for name, m in report.items():
        high = (m.get("band_High") or {}).get("right")
        lines.append(f"{Path(name.split(' ', 1)[-1]).parent.name if name != 'train' else name:12}"[:12]
                     + "".join(f"{format_number(m[k], 3) if isinstance(m[k], float) else str(m[k]):>13}" for k in keys)
                     + f"{format_number(high, 3):>13}")
    print_metrics(report, "\n".join(lines), args.json)
    return 0


def runs_context_chars(train: Sequence[str | Path], given: int | None) -> int:
    """How widely the --train runs read their passages (from the metrics.json beside each), which the
    calibration must keep: its features were measured on that reading.

    Raises:
        InvalidInput: the runs disagree, or disagree with ``given``; or nothing says it.
    """
    return _runs_setting(train, given, ("context_chars", "context_chars"), "--context-chars")


def runs_top_k(train: Sequence[str | Path], given: int | None) -> int:
    """How many passages the --train runs read per question, which the calibration keeps as the reader's
    default: the features it weighs (how many passages agree, their ranks) depend on it.

    Raises:
        InvalidInput: the runs disagree, or disagree with ``given``; or nothing says it.
    """
    return _runs_setting(train, given, ("top_k", "k"), "-k")


def runs_cascade(train: Sequence[str | Path]) -> dict:
    """The cascade the --train runs read with (``{"reader", "passages"}``, or ``{}``), which the calibration
    keeps: its features were measured on the passages the cascade let through.

    Raises:
        InvalidInput: the runs disagree.
    """
    found = set()
    for f in train:
        metrics_file = Path(f).with_name("metrics.json")
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            found.add(json.dumps(metrics.get("cascade") or {}, sort_keys=True))
    if len(found) > 1:
        raise InvalidInput(f"The --train runs were read with different cascades ({', '.join(sorted(found))}): "
                           "fit on runs read the same way.")
    return json.loads(found.pop()) if found else {}


def _runs_setting(train: Sequence[str | Path], given: int | None, keys: tuple[str, str], option: str) -> int:
    """One setting of the --train runs: ``metrics[keys[0]]`` of an open-corpus run, ``metrics["config"][keys[1]]``
    of a question-set run (the metrics.json beside each file)."""
    found = set() if given is None else {given}
    for f in train:
        metrics_file = Path(f).with_name("metrics.json")
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            value = metrics.get(keys[0], (metrics.get("config") or {}).get(keys[1]))
            if value is not None:
                found.add(int(value))
    if len(found) > 1:
        raise InvalidInput(f"The --train runs were read with different {option} ({sorted(found)}): "
                           "fit on runs made alike.")
    if not found:
        raise InvalidInput("No metrics.json beside the --train files says how they were read: "
                           f"give {option} N (what the runs used).")
    return found.pop()


def default_beir_out(data_dir: str | Path) -> Path:
    """Where ``qa eval beir`` writes by default: one folder per data set, named after it."""
    return Path(DEFAULT_OUT) / "beir" / Path(data_dir).resolve().name


def _cmd_beir(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_beir_out(args.data)
    modes = [args.mode] if args.mode else list(MODES)
    report = run_beir(args.data, out, modes=modes, limit=args.limit, show_progress=not args.quiet)
    table = [f"{'mode':10}{'nDCG@10':>10}{'R@100':>10}{'ms/q p50':>10}"]
    table += [f"{m:10}{v['ndcg@10']:>10.4f}{v['recall@100']:>10.4f}{v['ms_per_query_p50']:>10.1f}"
              for m, v in report["modes"].items()]
    print_metrics(report, "\n".join(table) + f"\nwrote {out / 'metrics.json'} and {out / 'run.tsv'}", args.json)
    return 0
