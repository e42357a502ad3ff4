"""Calibrate a reader from evaluation runs, and save the calibration with the reader.

:func:`fit_from_runs` (``qa eval fit-calibrator``) fits a calibrator, threshold and bands on the rows of
earlier runs (:mod:`qa.evaluation.calibration_fit`), measures them on held-out runs and writes the
reader's ``calibration.json`` anew. :func:`calibrate_threshold` (``qa eval --calibrate``) chooses only
the threshold, on a question-set run, and keeps the reader's calibrator and bands.

Example:
    >>> from qa.evaluation.calibrate import fit_from_runs
    >>> fitted = fit_from_runs(["runs/open/calA/predictions.jsonl"], test=["runs/open/test/predictions.jsonl"],
    ...                        reader="runs/r3")  # doctest: +SKIP
    >>> fitted.path, fitted.threshold  # doctest: +SKIP
    (PosixPath('runs/r3/calibration.json'), 0.41)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from qa.answering import pipeline  # save_calibration is looked up when called, so a test can stand in for it
from qa.answering.calibrator import Calibrator
from qa.errors import InvalidInput, MissingPath
from qa.evaluation.calibration_fit import TARGET_PRECISION, fit, load_rows, measure, reliability_table
from qa.evaluation.runner import QuestionsResult, rethreshold, summarize
from qa.evaluation.thresholds import calibration_threshold, candidates_of
from qa.reading.reader import is_packaged, reader_dir as resolve_reader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FittedCalibration:
    """What :func:`fit_from_runs` saved, and how it measured.

    Attributes:
        path: the ``calibration.json`` written.
        threshold: the abstention threshold, chosen on the training rows.
        target_precision: the precision of answered training questions the threshold was chosen for.
        weights: ``(feature, standardised weight)`` of the calibrator, largest first.
        report: :func:`~qa.evaluation.calibration_fit.measure`'s figures on the training rows (``"train"``)
            and on each held-out run (``"test <file>"``).
    """

    path: Path
    threshold: float
    target_precision: float
    weights: tuple[tuple[str, float], ...]
    report: dict[str, dict]


def fit_from_runs(train: Sequence[str | Path], test: Sequence[str | Path] = (), reader: str | Path | None = None,
                  target_precision: float = TARGET_PRECISION, top_k: int | None = None) -> FittedCalibration:
    """Fit a reader's calibration on the rows of earlier runs, measure it on others, and save it with the reader.

    The calibration keeps how the training runs read (passages per question, cascade: the
    ``metrics.json`` beside each file says), since its features were measured on that reading; the
    pipeline then reads the same way. When ``test`` runs are given, each band records its precision on
    them together, and a reliability table is kept: the app quotes both beside an answer.

    Args:
        train: ``predictions.jsonl`` of ``qa eval squad --open`` runs, or ``records.jsonl`` of ``qa eval``.
        test: runs on other articles, to measure the calibration on.
        reader: the reader whose ``calibration.json`` is replaced: a shipped reader's name or a folder
            (default: the default reader).
        target_precision: precision of answered training questions the threshold is chosen for.
        top_k: how many passages the runs read per question, when no ``metrics.json`` beside them says.

    Raises:
        InvalidInput: ``target_precision`` not strictly between 0 and 1; no ``train`` runs; a row without
            features; training rows all right or all wrong; runs read in different ways, or on passages
            widened beyond what was retrieved (which the pipeline no longer does).
        MissingPath: a run file or the reader does not exist.
    """
    if not 0.0 < target_precision < 1.0:
        raise InvalidInput(f"--target-precision must be between 0 and 1, got {target_precision}.")
    if not train:
        raise InvalidInput("Fitting a calibrator needs --train FILE... (predictions of open-corpus runs).")
    for f in [*train, *test]:
        if not Path(f).is_file():
            raise MissingPath(f"No such file: {f} (give the predictions.jsonl of earlier runs).")
    folder = resolve_reader(reader)
    try:
        train_rows, test_rows = load_rows(train), {str(f): load_rows([f]) for f in test}
    except ValueError as err:
        raise InvalidInput(str(err)) from err
    try:
        calibration = fit(train_rows, target_precision=target_precision)
    except ValueError as err:  # rows that are all right or all wrong: nothing to learn from
        raise InvalidInput(f"Can't fit on the --train rows: {err}.") from err
    _refuse_widened(train)
    calibration["top_k"] = runs_top_k(train, top_k)
    cascade = runs_cascade(train)
    if cascade:
        calibration["cascade"] = cascade
    calibrator, picks = Calibrator.from_dict(calibration["calibrator"]), calibration["picks"]
    threshold, bands = calibration["threshold"], calibration["bands"]
    report = {"train": measure(train_rows, calibrator, threshold, bands, picks),
              **{f"test {f}": measure(rows, calibrator, threshold, bands, picks) for f, rows in test_rows.items()}}
    if test_rows:
        held_out_rows = [r for rows in test_rows.values() for r in rows]
        held_out = measure(held_out_rows, calibrator, threshold, bands, picks)
        for band in bands:
            stats = held_out[f"band_{band['name']}"]
            band.update(held_out_precision=stats["right"], held_out_answers=stats["answers"])
        calibration["reliability"] = reliability_table(held_out_rows, calibrator, picks)
    details = {k: v for k, v in calibration.items() if k != "threshold"}
    details.update(trained_on=[str(f) for f in train], measured_on=report)
    path = pipeline.save_calibration(threshold, details, folder, allow_packaged=is_packaged(folder), replace=True)
    logger.info("saved calibrator and threshold %.4f to %s", threshold, path)
    return FittedCalibration(path=Path(path), threshold=threshold, target_precision=target_precision,
                             weights=tuple((name, weight) for name, weight in calibration["weights"]), report=report)


def calibrate_threshold(result: QuestionsResult, reader: str | Path, questions: str | Path,
                        index: str | Path) -> dict:
    """Choose the abstention threshold on a question-set run and save it with the reader the run used.

    The threshold is SQuAD 2.0's best (``find_best_thresh``), halfway to the next lower score; the
    reader's calibrator and bands are kept. The packaged reader's ``calibration.json`` is written only
    when the run used the packaged reader.

    Args:
        result: the run (:func:`qa.evaluation.runner.evaluate_questions`).
        reader: the folder of the reader the run used.
        questions: the question set the run asked (recorded with the threshold).
        index: the index the run searched (recorded with the threshold).

    Returns:
        What was saved and how the run scores before and after: ``threshold``, ``overall_f1``, ``file``,
        ``previous_threshold``, ``before``, ``after`` and how it was chosen.
    """
    folder = Path(reader)
    threshold, best = calibration_threshold(candidates_of(result.records))
    after = summarize(rethreshold(result.records, threshold))
    details = {
        "method": "SQuAD 2.0 best threshold (find_best_thresh) on the question set, halfway to the next lower score",
        "reader": str(folder), "questions": str(questions), "n": len(result.records), "index": str(index),
        "mode": result.metrics["config"]["mode"], "k": result.metrics["config"]["k"],
        "previous_threshold": result.metrics["config"]["threshold"],
        "before": headline(result.metrics), "after": headline(after),
        "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = pipeline.save_calibration(threshold, details, folder, allow_packaged=is_packaged(folder))
    logger.info("saved threshold %.4f to %s", threshold, path)
    return {"threshold": threshold, "overall_f1": best, "file": str(path), **details}


def headline(metrics: dict) -> dict:
    """The figures a threshold moves, from a question-set run's metrics: overall F1, the answers' EM and
    F1, and the abstention rates."""
    answers = metrics["answers"] or {}
    return {"overall_f1": metrics["overall"]["f1"], "em": answers.get("em"), "f1": answers.get("f1"),
            **metrics["abstention"]}


def _refuse_widened(train: Sequence[str | Path]) -> None:
    """Raise :class:`InvalidInput` when a ``metrics.json`` beside a ``train`` run says it read its passages
    widened (``context_chars`` above 0): the pipeline reads them as retrieved, so features measured so
    would not describe its answers."""
    for f in train:
        metrics_file = Path(f).with_name("metrics.json")
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            widened = metrics.get("context_chars", (metrics.get("config") or {}).get("context_chars")) or 0
            if int(widened) > 0:
                raise InvalidInput(f"{f} read its passages widened to {widened} characters, which the pipeline "
                                   "no longer does: fit on runs of this version.")


def runs_top_k(train: Sequence[str | Path], given: int | None) -> int:
    """How many passages the ``train`` runs read per question, which the calibration keeps as the reader's
    default: the features it weighs (how many passages agree, their ranks) depend on it.

    Raises:
        InvalidInput: the runs disagree, or disagree with ``given``; or nothing says it.
    """
    return _runs_setting(train, given, ("top_k", "k"), "-k")


def runs_cascade(train: Sequence[str | Path]) -> dict:
    """The cascade the ``train`` runs read with (``{"reader", "passages"}``, with ``"focus"`` when they read only
    around the first reader's answers; or ``{}``), which the calibration keeps: its features were measured on the
    passages the cascade let through.

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
    """One setting of the ``train`` runs: ``metrics[keys[0]]`` of an open-corpus run, ``metrics["config"][keys[1]]``
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
