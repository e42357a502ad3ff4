"""``qa eval``: the question set end to end, the dialogue set, SQuAD-format data, a BEIR folder, and
fitting a reader's calibrator on earlier runs; one subcommand each, with only the options it uses.

This module parses arguments, calls :mod:`qa.evaluation` and prints; the measuring lives there. The
question set is an explicit subcommand (``questions``) that bare ``qa eval`` stands for: its options
can't sit on ``qa eval`` itself, where argparse would also take them before another subcommand
(``qa eval --calibrate squad ...``) and then drop or ignore them.

Example:
    qa eval                                   # the question set, on embeddings/ (qa eval questions)
    qa eval --calibrate                       # choose and save the no-answer threshold
    qa eval conversations                     # every turn of eval/conversations.jsonl, alone and in context
    qa eval squad --data squad-v2.0-dev.json  # the reader alone, SQuAD EM/F1 with HasAns/NoAns
    qa eval squad --open FILE...              # the whole pipeline over SQuAD-format articles as a corpus
    qa eval beir --data beir/scifact          # the retriever alone, nDCG@10 and Recall@100 per mode
    qa eval fit-calibrator --train RUN... --test RUN... --reader DIR   # fit a reader's calibrator
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from qa.cli.common import INDEX_HELP, at_least, probability, reader_runtime_arg, runtime_kwargs
from qa.errors import InvalidInput, MissingPath
from qa.evaluation.benchmarks import evaluate_squad, run_beir
from qa.evaluation.calibration_fit import TARGET_PRECISION
from qa.evaluation.common import format_number
from qa.reading.names import DEFAULT_READER, READER_HELP
from qa.retrieval import DEFAULT_MODE, MODES

logger = logging.getLogger(__name__)

DEFAULT_QUESTIONS = "eval/questions.jsonl"
DEFAULT_CONVERSATIONS = "eval/conversations.jsonl"
DEFAULT_OUT = "eval/out"
CONVERSATIONS_OUT = f"{DEFAULT_OUT}/conversations"
QUESTIONS = "questions"  # the subcommand bare `qa eval` runs


def register(subparsers) -> None:
    """Add ``qa eval`` and its subcommands to the ``qa`` command."""
    p = subparsers.add_parser(
        "eval", help="measure retrieval, answers, abstention and citations",
        description=f"Measure the product. Without a subcommand, qa eval [options] is qa eval {QUESTIONS} [options].",
    )
    p.default_command = QUESTIONS
    sub = p.add_subparsers(dest="evaluation", required=True, metavar="SUBCOMMAND")
    _add_questions(sub)
    _add_conversations(sub)
    _add_squad(sub)
    _add_beir(sub)
    _add_fit_calibrator(sub)


# ---------------------------------------------------------------------------------- the options they share


def _retrieval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default="embeddings", help=INDEX_HELP)
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE, help=f"retrieval mode (default: {DEFAULT_MODE})")
    _top_k_arg(p)


def _top_k_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=at_least(1), default=None,
                   help="passages given to the reader (default: as many as its calibration was fitted on)")


def _reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader", default=None, metavar="NAME|DIR", help=f"{READER_HELP} (default: {DEFAULT_READER})")
    reader_runtime_arg(p)
    p.add_argument("--threshold", type=probability, default=None, help="no-answer threshold (default: calibrated)")


def _cascade_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cascade", type=at_least(0), default=None, metavar="N",
                   help="the fast reader reads the retrieved passages first and the reader only the N holding the "
                        "fast reader's best answers (0: none; default: as the reader's calibration says)")
    p.add_argument("--focus", type=at_least(0), default=None, metavar="CHARS",
                   help="in a cascade, the reader reads only CHARS characters around the fast reader's answers in "
                        "each passage (0: whole passages; default: as the reader's calibration says)")


def _output_args(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", default=None, help=f"output folder (default: {default_out})")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _limit_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=at_least(1), default=None, metavar="N", help="only the first N questions")


def print_metrics(metrics: dict, table: str, as_json: bool) -> None:
    print(json.dumps(metrics, indent=2, ensure_ascii=False) if as_json else table)


# ---------------------------------------------------------------------------------- the question set


def _add_questions(sub) -> None:
    p = sub.add_parser(QUESTIONS, help="the question set end to end (what bare qa eval runs)",
                       description="Ask every question of the question set through the whole pipeline; write "
                                   "predictions, metrics and an HTML report.")
    p.add_argument("--questions", default=DEFAULT_QUESTIONS, help=f"question set (default: {DEFAULT_QUESTIONS})")
    _retrieval_args(p)
    _reader_args(p)
    _cascade_arg(p)
    p.add_argument("--calibrate", action="store_true",
                   help="choose the best no-answer threshold on this run and save it with the reader")
    _output_args(p, DEFAULT_OUT)
    p.set_defaults(func=_questions)


def _questions(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA
    from qa.evaluation.report import format_table
    from qa.evaluation.runner import evaluate_questions, load_questions, write_outputs

    questions = load_questions(args.questions)
    qa = QA.load(args.index, reader=args.reader, threshold=args.threshold, cascade=args.cascade, focus=args.focus,
                 **runtime_kwargs(args))
    result = evaluate_questions(qa, questions, k=args.k, mode=args.mode, show_progress=not args.quiet)
    result.metrics["config"].update(questions=str(args.questions), index=str(args.index), reader=str(qa.reader.path))
    if args.calibrate:
        from qa.evaluation.calibrate import calibrate_threshold

        result.metrics["calibration"] = calibrate_threshold(result, qa.reader.path, args.questions, args.index)
    paths = write_outputs(result, args.out or DEFAULT_OUT)
    print_metrics(result.metrics, format_table(result.metrics), args.json)
    if not args.json:
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
        if args.calibrate:
            print(_calibration_table(result.metrics["calibration"]))
    return 0


def _calibration_table(cal: dict) -> str:
    lines = [f"calibrated threshold: {cal['previous_threshold']:.4f} -> {cal['threshold']:.4f} (saved to {cal['file']})",
             f"{'':28}{'before':>10}{'after':>10}"]
    for key in ("overall_f1", "em", "f1", "unanswerable_refused", "answerable_wrongly_refused"):
        lines.append(f"{key:28}{format_number(cal['before'][key]):>10}{format_number(cal['after'][key]):>10}")
    lines.append("(chosen and measured on the same questions: the 'after' column is optimistic)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- the dialogue set


def _add_conversations(sub) -> None:
    p = sub.add_parser("conversations", help="every turn of the dialogue set, asked alone and in context",
                       description="Ask every turn of the dialogues alone and in context (follow-up questions "
                                   "completed from the turns before).")
    p.add_argument("--conversations", default=DEFAULT_CONVERSATIONS,
                   help=f"the dialogue set (default: {DEFAULT_CONVERSATIONS})")
    _retrieval_args(p)
    _reader_args(p)
    _cascade_arg(p)
    _output_args(p, CONVERSATIONS_OUT)
    p.set_defaults(func=_conversations)


def _conversations(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA
    from qa.evaluation.conversations import (evaluate_conversations, format_conversation_table, load_conversations,
                                             write_conversation_outputs)

    conversations = load_conversations(args.conversations)
    qa = QA.load(args.index, reader=args.reader, threshold=args.threshold, cascade=args.cascade, focus=args.focus,
                 **runtime_kwargs(args))
    result = evaluate_conversations(qa, conversations, k=args.k, mode=args.mode, show_progress=not args.quiet)
    result.metrics["config"].update(conversations_file=str(args.conversations), index=str(args.index),
                                    reader=str(qa.reader.path))
    paths = write_conversation_outputs(result, args.out or CONVERSATIONS_OUT)
    print_metrics(result.metrics, format_conversation_table(result.metrics), args.json)
    if not args.json:
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


# ---------------------------------------------------------------------------------- SQuAD-format data


def _add_squad(sub) -> None:
    p = sub.add_parser("squad", help="the reader alone (--data) or the whole pipeline (--open) on SQuAD-format data",
                       description="--data: the reader alone, each question read in its own context (SQuAD's EM/F1, "
                                   "HasAns/NoAns). --open: the articles become a folder of documents, indexed, and "
                                   "every question, unanswerable ones included, goes through the whole pipeline.")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", default=None, metavar="FILE", help="a SQuAD-format JSON file: the reader alone")
    data.add_argument("--open", nargs="+", default=None, metavar="FILE",
                      help="SQuAD-format (or DPR-style) JSON files: their articles as a corpus, the whole pipeline")
    _reader_args(p)
    _limit_arg(p)
    _output_args(p, f"{DEFAULT_OUT}/squad with --data, {DEFAULT_OUT}/open/<first file's name> with --open")
    pipeline = p.add_argument_group("with --open")
    _top_k_arg(pipeline)
    _cascade_arg(pipeline)
    p.set_defaults(func=_squad)


def _squad(args: argparse.Namespace) -> int:
    if args.open is not None:
        return _open_corpus(args)
    given = [flag for flag, value in (("-k", args.k), ("--cascade", args.cascade), ("--focus", args.focus))
             if value is not None]
    if given:
        raise InvalidInput(f"{', '.join(given)} go with --open: qa eval squad --data reads each question in its "
                           "own context alone.")
    return _reader_alone(args)


def _reader_alone(args: argparse.Namespace) -> int:
    from qa.reading.reader import Reader
    from qa.squad import dedupe, load_squad

    examples = dedupe(load_squad(args.data))[: args.limit]
    reader = Reader.load(args.reader, runtime=args.reader_runtime)
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
    table = "\n".join(f"{key:22}{format_number(value, 2) if isinstance(value, float) else value}"
                      for key, value in metrics.items())
    print_metrics(metrics, table + f"\nwrote {out / 'predictions.json'}, {out / 'metrics.json'}", args.json)
    return 0


def _open_corpus(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA
    from qa.evaluation.open_corpus import evaluate_open_corpus
    from qa.jsonl import write_jsonl

    for f in args.open:
        if not Path(f).is_file():
            raise MissingPath(f"No such file: {f} (qa eval squad --open takes SQuAD-format JSON files).")
    out = Path(args.out or f"{DEFAULT_OUT}/open/{Path(args.open[0]).stem}")
    metrics, rows = evaluate_open_corpus(
        args.open, out, load_qa=lambda index: QA.load(index, reader=args.reader, threshold=args.threshold,
                                                      cascade=args.cascade, focus=args.focus, **runtime_kwargs(args)),
        top_k=args.k, limit=args.limit, gold_passage=True, show_progress=not args.quiet)
    write_jsonl(out / "predictions.jsonl", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    shown = {k: v for k, v in metrics.items() if k not in ("risk_coverage", "selective", "files")}
    shown.update({f"selective {k}": v for k, v in metrics["selective"].items() if k != "questions"})
    table = "\n".join(f"{key:28}{format_number(value, 3) if isinstance(value, float) else value}"
                      for key, value in shown.items())
    print_metrics(metrics, table + f"\nwrote {out / 'predictions.jsonl'}, {out / 'metrics.json'}", args.json)
    return 0


# ---------------------------------------------------------------------------------- BEIR


def _add_beir(sub) -> None:
    p = sub.add_parser("beir", help="the retriever alone on a BEIR folder (nDCG@10, Recall@100 per mode)",
                       description="Index a BEIR data set's corpus and measure each retrieval mode on its queries.")
    p.add_argument("--data", required=True, metavar="DIR", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--mode", choices=MODES, default=None, help="one retrieval mode (default: all three)")
    _limit_arg(p)
    _output_args(p, f"{DEFAULT_OUT}/beir/<data set folder name>")
    p.set_defaults(func=_beir)


def default_beir_out(data_dir: str | Path) -> Path:
    """Where ``qa eval beir`` writes by default: one folder per data set, named after it."""
    return Path(DEFAULT_OUT) / "beir" / Path(data_dir).resolve().name


def _beir(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_beir_out(args.data)
    modes = [args.mode] if args.mode else list(MODES)
    report = run_beir(args.data, out, modes=modes, limit=args.limit, show_progress=not args.quiet)
    table = [f"{'mode':10}{'nDCG@10':>10}{'R@100':>10}{'ms/q p50':>10}"]
    table += [f"{m:10}{v['ndcg@10']:>10.4f}{v['recall@100']:>10.4f}{v['ms_per_query_p50']:>10.1f}"
              for m, v in report["modes"].items()]
    print_metrics(report, "\n".join(table) + f"\nwrote {out / 'metrics.json'} and {out / 'run.tsv'}", args.json)
    return 0


# ---------------------------------------------------------------------------------- fitting a calibrator


def _add_fit_calibrator(sub) -> None:
    p = sub.add_parser("fit-calibrator", help="fit a reader's calibrator on the predictions of earlier runs",
                       description="Fit the reader's P(right), its threshold and bands on the rows of earlier runs "
                                   "(--train), measure them on others (--test), and save them in the reader's "
                                   "calibration.json.")
    p.add_argument("--train", nargs="+", required=True, metavar="FILE",
                   help="predictions.jsonl of qa eval squad --open runs (or records.jsonl of qa eval) to fit on")
    p.add_argument("--test", nargs="*", default=(), metavar="FILE",
                   help="runs on other articles, to measure the calibration on")
    p.add_argument("--reader", default=None, metavar="NAME|DIR",
                   help=f"the reader whose calibration.json is written: {READER_HELP} (default: {DEFAULT_READER})")
    p.add_argument("--target-precision", type=float, default=TARGET_PRECISION,
                   help=f"precision of answered questions the threshold is chosen for (default: {TARGET_PRECISION})")
    p.add_argument("-k", type=at_least(1), default=None,
                   help="passages the runs read per question, when no metrics.json beside them says")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    p.set_defaults(func=_fit_calibrator)


def _fit_calibrator(args: argparse.Namespace) -> int:
    from qa.evaluation.calibrate import fit_from_runs

    fitted = fit_from_runs(args.train, args.test, reader=args.reader, target_precision=args.target_precision,
                           top_k=args.k)
    lines = [f"calibrator saved to {fitted.path}: threshold {fitted.threshold:.3f} "
             f"(precision {fitted.target_precision:.0%} on the training rows)", "largest weights (standardised):"]
    lines += [f"  {name:14}{weight:+.3f}" for name, weight in fitted.weights]
    keys = ("questions", "f1", "HasAns_f1", "NoAns_refused", "answerable_refused", "aurc", "ece", "coverage@90")
    lines.append(f"{'':12}" + "".join(f"{k[:12]:>13}" for k in keys) + f"{'High right':>13}")
    for name, m in fitted.report.items():
        high = (m.get("band_High") or {}).get("right")
        # A held-out run is named after its folder (runs/open/<name>/predictions.jsonl).
        label = name if name == "train" else Path(name.split(" ", 1)[-1]).parent.name
        lines.append(f"{label:12}"[:12]
                     + "".join(f"{format_number(m[k], 3) if isinstance(m[k], float) else str(m[k]):>13}" for k in keys)
                     + f"{format_number(high, 3):>13}")
    print_metrics(fitted.report, "\n".join(lines), args.json)
    return 0
