"""Risk-coverage curves and reliability diagrams of several runs on one page: before and after a change.

Each run is the rows of an evaluation (``predictions.jsonl`` of ``qa eval squad --open``, or
``records.jsonl`` of ``qa eval``) scored by a calibration (a reader's ``calibration.json``): the
rows keep every candidate's features, so a run made before a calibrator was refitted can be scored
by the calibration it shipped with. Runs are grouped by data set, one row of plots per set.

Usage:
    python -m benchmarks.trust_curves --out report.html \\
        --run "SQuAD 2.0 held-out|before|runs/old/predictions.jsonl|old/calibration.json" \\
        --run "SQuAD 2.0 held-out|after|runs/new/predictions.jsonl|qa/models/fast-reader/calibration.json"
"""

from __future__ import annotations

import argparse
import html
import json
from collections import defaultdict
from pathlib import Path

from qa.answering.calibrator import Calibrator
from qa.evaluation import selective
from qa.evaluation.calibration_fit import candidate_scores, choose, load_rows, measure
from qa.evaluation.report import _CSS, _figure, _png

SHOWN = ("questions", "f1", "HasAns_f1", "NoAns_refused", "answerable_refused", "aurc", "ece", "coverage@90",
         "band_High")


def scored(rows: list[dict], calibration: dict) -> tuple[list[float], list[bool], dict]:
    """Each row's P(right) under ``calibration``, whether its candidate is right, and the figures."""
    calibrator, picks = Calibrator.from_dict(calibration["calibrator"]), bool(calibration.get("picks"))
    chosen = [choose(r, calibrator, picks) for r in rows]
    scores = [score for _, score in chosen]
    right = [candidate_scores(r, text)[2] for r, (text, _) in zip(rows, chosen)]
    return scores, right, measure(rows, calibrator, calibration["threshold"], calibration.get("bands", ()), picks)


def _plots(runs: list[tuple[str, list[float], list[bool], dict]]) -> tuple[str, str]:
    fig = _figure(5.2, 3.6)
    ax = fig.subplots()
    for label, scores, right, figures in runs:
        curve = selective.risk_coverage(scores, right)
        ax.step([0.0] + [p.coverage for p in curve], [curve[0].precision] + [p.precision for p in curve],
                where="pre", label=f"{label} (AURC {figures['aurc']:.3f})")
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="coverage (share of questions answered)", ylabel="precision (right, F1 >= 0.5)",
           xlim=(0, 1.02), ylim=(0, 1.05))
    ax.legend(fontsize=8, loc="lower left")
    risk = _png(fig)
    fig = _figure(5.2, 3.6)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for label, scores, right, figures in runs:
        bins = [b for b in selective.reliability(scores, right) if b.count]
        ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], "o-", markersize=3,
                label=f"{label} (ECE {figures['ece']:.3f})")
    ax.set(xlabel="stated confidence (bin mean)", ylabel="share right", xlim=(0, 1), ylim=(0, 1.05))
    ax.legend(fontsize=8, loc="upper left")
    return risk, _png(fig)


def _cell(value) -> str:
    if isinstance(value, dict):  # a band: share right of how many answers
        right = value.get("right")
        return "-" if right is None else f"{right:.2f} of {value['answers']}"
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def render(groups: dict[str, list[tuple[str, list[float], list[bool], dict]]]) -> str:
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Trust: before and after</title>',
             f"<style>{_CSS}</style></head><body><h1>Trust: before and after</h1>",
             "<p>Each run's questions were asked through the whole pipeline; each row is scored by the calibration "
             "named in its label. An answer is right when its F1 is at least 0.5; an answered unanswerable question "
             "is wrong. Risk-coverage: the share of the answered questions that are right when only the most "
             "confident share is answered. Reliability: in each confidence bin, the share right.</p>"]
    for name, runs in groups.items():
        risk, reliability = _plots(runs)
        parts.append(f"<h2>{html.escape(name)}</h2><table><tr><th>run</th>"
                     + "".join(f"<th>{html.escape(k)}</th>" for k in SHOWN) + "</tr>")
        for label, _, _, figures in runs:
            parts.append(f"<tr><td>{html.escape(label)}</td>"
                         + "".join(f"<td>{_cell(figures.get(k))}</td>" for k in SHOWN) + "</tr>")
        parts.append("</table><div class='plots'>"
                     f'<img alt="risk-coverage, {html.escape(name)}" src="data:image/png;base64,{risk}">'
                     f'<img alt="reliability, {html.escape(name)}" src="data:image/png;base64,{reliability}"></div>')
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="SET|LABEL|ROWS|CALIBRATION",
                        help="a data set's name, the run's label, its predictions/records file, the calibration "
                             "that scores it")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    groups: dict[str, list] = defaultdict(list)
    for spec in args.run:
        name, label, rows_file, calibration_file = spec.split("|")
        calibration = json.loads(Path(calibration_file).read_text(encoding="utf-8"))
        groups[name].append((label, *scored(load_rows([rows_file]), calibration)))
    Path(args.out).write_text(render(groups), encoding="utf-8")
    if args.json:
        figures = {name: {label: f for label, _, _, f in runs} for name, runs in groups.items()}
        Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    for name, runs in groups.items():
        print(name)
        for label, _, _, f in runs:
            print(f"  {label:36}" + "  ".join(f"{k} {_cell(f.get(k))}" for k in SHOWN))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
