"""A question-set evaluation as text (:func:`format_table`) and as a self-contained HTML report
(:func:`write_report`: tables and matplotlib plots as inline PNG).

Every piece of text from the questions, answers and documents is HTML-escaped, so the report is safe
to open whatever the corpus holds.

Example:
    >>> from qa.evaluation.report import write_report
    >>> write_report("eval/out/report.html", result.metrics, result.records, result.sweep)
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

from qa.evaluation import selective
from qa.evaluation.common import HIT_KS, RIGHT_F1, candidate_right, format_number, get_path

logger = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.muted { color: #777; }
"""


def format_table(metrics: dict) -> str:
    """A compact text table: all questions, then one column per kind."""
    columns = [("all", metrics)] + list(metrics.get("by_kind", {}).items())

    rows = [("questions", ("questions",), None)]
    rows += [(f"hit@{n}", ("retrieval", f"hit@{n}"), 3) for n in HIT_KS]
    rows += [
        ("MRR@10", ("retrieval", "mrr@10"), 3),
        ("nDCG@10", ("retrieval", "ndcg@10"), 3),
        ("EM", ("answers", "em"), 3),
        ("F1", ("answers", "f1"), 3),
        ("F1 gold passage", ("reader", "gold_passage_f1"), 3),
        ("span F1", ("reader", "retrieved_span_f1"), 3),
        ("span F1 gold", ("reader", "gold_passage_span_f1"), 3),
        ("overall F1", ("overall", "f1"), 3),
        ("unans. refused", ("abstention", "unanswerable_refused"), 3),
        ("ans. refused", ("abstention", "answerable_wrongly_refused"), 3),
        ("citations valid", ("citations", "valid"), 3),
        ("AURC", ("selective", "aurc"), 3),
        ("ECE", ("selective", "ece"), 3),
        ("cov. @90% prec.", ("selective", "coverage@90"), 3),
        ("total ms p50", ("latency_ms", "total", "p50"), 0),
        ("total ms p95", ("latency_ms", "total", "p95"), 0),
    ]

    def cell(m: dict, path: tuple[str, ...], digits: int | None) -> str:
        value = get_path(m, *path)
        return str(value) if digits is None else format_number(value, digits)

    width = max(len(name) for name, _ in columns) + 2
    lines = ["".ljust(16) + "".join(name.rjust(max(width, 8)) for name, _ in columns)]
    for label, path, digits in rows:
        lines.append(label.ljust(16) + "".join(cell(m, path, digits).rjust(max(width, 8)) for _, m in columns))
    t = metrics.get("threshold")
    if t:
        lines.append(f"threshold {t['current']:.3f} (overall F1 {t['current_overall_f1']:.3f}); "
                     f"best on this set {t['best']:.3f} (overall F1 {t['best_overall_f1']:.3f})")
    e = get_path(metrics, "reader", "errors")
    if e:
        lines.append(f"answerable: {e['right']} right (F1 >= {RIGHT_F1}); wrong: {e['retriever_miss']} retriever misses "
                     f"(no relevant passage read), {e['refused']} refused and {e['reader_error']} misread with one read")
    return "\n".join(lines)


def write_report(path: str | Path, metrics: dict, records: Sequence[dict], sweep: Sequence[tuple[float, float]],
                 title: str = "qa evaluation") -> Path:
    """Render the report and write it to ``path``."""
    path = Path(path)
    path.write_text(render_report(metrics, records, sweep, title), encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def render_report(metrics: dict, records: Sequence[dict], sweep: Sequence[tuple[float, float]],
                  title: str = "qa evaluation") -> str:
    """The report as one HTML string (no external files, scripts or styles)."""
    esc = html.escape
    plots = {
        "F1 and hit@k by question kind": lambda: _plot_by_kind(metrics),
        "Best-span scores: right vs wrong": lambda: _plot_scores(records, metrics),
        "Threshold sweep": lambda: _plot_sweep(sweep, metrics),
        "Risk-coverage: precision of the answered questions, most confident first":
            lambda: _plot_risk_coverage(records, metrics),
        "Reliability: stated confidence against the share right": lambda: _plot_reliability(records, metrics),
        "Latency": lambda: _plot_latency(records),
    }
    can_plot = has_matplotlib()
    if not can_plot:
        logger.warning("the report has no plots: they need matplotlib (pip install 'qa[eval]')")
    figures = {caption: plot() if can_plot else None for caption, plot in plots.items()}
    threshold = metrics.get("threshold") or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{esc(time.strftime("%Y-%m-%d %H:%M"))} &middot; '
        + esc(", ".join(f"{k}={v}" for k, v in (metrics.get("config") or {}).items())) + "</p>",
        "<h2>Summary</h2>", _summary_table(metrics),
    ]
    if threshold:
        parts.append(f"<p>Threshold {threshold['current']:.3f}: overall F1 {threshold['current_overall_f1']:.3f}. "
                     f"Best threshold on this set {threshold['best']:.3f}: "
                     f"overall F1 {threshold['best_overall_f1']:.3f}.</p>")
    parts.append('<h2>Plots</h2><div class="plots">')
    if not can_plot:
        parts.append('<p class="muted">No plots: they need matplotlib, which is not installed '
                     "(<code>pip install 'qa[eval]'</code>).</p>")
    for caption, png in figures.items() if can_plot else ():
        parts.append(f"<h3>{esc(caption)}</h3>" + (f'<img alt="{esc(caption)}" src="data:image/png;base64,{png}">'
                                                  if png else '<p class="muted">nothing to plot</p>'))
    parts.append("</div>")
    parts.append("<h2>Wrong or refused answers to answerable questions</h2>")
    parts.append(_records_table([r for r in records if r["answers"] and r["f1"] < RIGHT_F1]))
    parts.append("<h2>Unanswerable questions that got an answer</h2>")
    parts.append(_records_table([r for r in records if not r["answers"] and not r["abstained"]]))
    parts.append("<h2>All questions</h2>")
    parts.append(_records_table(records))
    parts.append("</body></html>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="num">-</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


_SUMMARY_ROWS = [
    ("questions", ("questions",)), ("hit@1", ("retrieval", "hit@1")), ("hit@3", ("retrieval", "hit@3")),
    ("hit@5", ("retrieval", "hit@5")), ("hit@10", ("retrieval", "hit@10")), ("MRR@10", ("retrieval", "mrr@10")),
    ("nDCG@10", ("retrieval", "ndcg@10")), ("EM", ("answers", "em")), ("F1", ("answers", "f1")),
    ("EM, gold passage", ("reader", "gold_passage_em")), ("F1, gold passage", ("reader", "gold_passage_f1")),
    ("best-span F1 (no abstention)", ("reader", "retrieved_span_f1")),
    ("best-span F1, gold passage", ("reader", "gold_passage_span_f1")),
    ("overall F1 (answerable + unanswerable)", ("overall", "f1")),
    ("unanswerable refused", ("abstention", "unanswerable_refused")),
    ("answerable wrongly refused", ("abstention", "answerable_wrongly_refused")),
    ("citations verbatim", ("citations", "verbatim")), ("citations hold the answer", ("citations", "contains_answer")),
    (f"right (F1 >= {RIGHT_F1})", ("reader", "errors", "right")),
    ("wrong: retriever misses", ("reader", "errors", "retriever_miss")),
    ("wrong: refused, relevant passage read", ("reader", "errors", "refused")),
    ("wrong: misread, relevant passage read", ("reader", "errors", "reader_error")),
    ("retrieve ms p50", ("latency_ms", "retrieve", "p50")), ("retrieve ms p95", ("latency_ms", "retrieve", "p95")),
    ("read ms p50", ("latency_ms", "read", "p50")), ("read ms p95", ("latency_ms", "read", "p95")),
    ("total ms p50", ("latency_ms", "total", "p50")), ("total ms p95", ("latency_ms", "total", "p95")),
]


def _summary_table(metrics: dict) -> str:
    columns = [("all", metrics)] + list((metrics.get("by_kind") or {}).items())
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(name)}</th>" for name, _ in columns) + "</tr>"
    rows = [f"<tr><th>{html.escape(label)}</th>" + "".join(_cell(get_path(m, *path)) for _, m in columns) + "</tr>"
            for label, path in _SUMMARY_ROWS]
    return "<table>" + head + "".join(rows) + "</table>"


def _records_table(records: Sequence[dict]) -> str:
    if not records:
        return '<p class="muted">none</p>'
    head = ("<tr><th>id</th><th>kind</th><th>question</th><th>gold</th><th>answer</th><th>score</th>"
            "<th>F1</th><th>gold ranks</th><th>gold-passage answer</th></tr>")
    rows = []
    for r in records:
        answer = "(abstained)" if r["abstained"] else r["answer"]
        gold = r.get("gold_passage") or {}
        ranks = ", ".join(str(x) for x in (r.get("retrieval") or {}).get("ranks", [])) if r.get("retrieval") else ""
        rows.append("<tr>" + "".join([
            _cell(r["id"]), _cell(r["kind"]), _cell(r["question"]), _cell(" | ".join(r["answers"]) or "(none)"),
            _cell(answer), _cell(r["score"]), _cell(r["f1"]), _cell(ranks),
            _cell(("(abstained)" if gold.get("abstained") else gold.get("answer")) if gold else ""),
        ]) + "</tr>")
    return "<table>" + head + "".join(rows) + "</table>"


# ---------------------------------------------------------------------------------------- plots


def has_matplotlib() -> bool:
    """Whether matplotlib, which draws the plots, can be imported (it is the ``eval`` extra, not a
    dependency of the package)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _plot_by_kind(metrics: dict) -> str | None:
    kinds = [k for k, m in (metrics.get("by_kind") or {}).items() if m.get("answers")]
    if not kinds:
        return None
    series = [("F1", ("answers", "f1")), ("best-span F1", ("reader", "retrieved_span_f1")),
              ("best-span F1, gold passage", ("reader", "gold_passage_span_f1"))]
    series += [(f"hit@{n}", ("retrieval", f"hit@{n}")) for n in HIT_KS]
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    width = 0.8 / len(series)
    for i, (label, path) in enumerate(series):
        values = [get_path(metrics["by_kind"][k], *path) or 0.0 for k in kinds]
        ax.bar([x + i * width for x in range(len(kinds))], values, width, label=label)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(kinds))], kinds)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share / score")
    ax.legend(fontsize=8, ncol=3)
    return _png(fig)


def _plot_scores(records: Sequence[dict], metrics: dict) -> str | None:
    with_span = [r for r in records if r["candidate"]["text"]]
    right = [r["score"] for r in with_span if candidate_right(r)]
    wrong = [r["score"] for r in with_span if not candidate_right(r)]
    if not right and not wrong:
        return None
    fig = _figure()
    ax = fig.subplots()
    bins = [i / 20 for i in range(21)]
    ax.hist([right, wrong], bins=bins, label=[f"right ({len(right)})", f"wrong or unanswerable ({len(wrong)})"],
            color=["tab:green", "tab:red"], alpha=0.8)
    current = get_path(metrics, "threshold", "current")
    if current is not None:
        ax.axvline(current, color="black", linestyle="--", label=f"threshold {current:.2f}")
    ax.set_xlabel("best span score")
    ax.set_ylabel("questions")
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_sweep(sweep: Sequence[tuple[float, float]], metrics: dict) -> str | None:
    if not sweep:
        return None
    fig = _figure()
    ax = fig.subplots()
    xs, ys = zip(*sorted(sweep))
    ax.step(xs, ys, where="pre", label="overall F1")  # F1 at t holds on (previous t, t]
    for key, style in (("current", "--"), ("best", ":")):
        t = get_path(metrics, "threshold", key)
        if t is not None:
            ax.axvline(t, color="black", linestyle=style, label=f"{key} {t:.3f}")
    ax.set_xlabel("no-answer threshold (answer when score >= threshold)")
    ax.set_ylabel("overall F1 (all questions)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return _png(fig)


def _selective(records: Sequence[dict], metrics: dict) -> tuple[list[float], list[bool], dict]:
    """Each record's score and whether its candidate is right, and the run's selective summary."""
    scores, right = [r["score"] for r in records], [candidate_right(r) for r in records]
    return scores, right, metrics.get("selective") or selective.summary(scores, right)


def _plot_risk_coverage(records: Sequence[dict], metrics: dict) -> str | None:
    scores, right, summary = _selective(records, metrics)
    curve = selective.risk_coverage(scores, right)
    if not curve:
        return None
    fig = _figure()
    ax = fig.subplots()
    ax.step([0.0] + [p.coverage for p in curve], [curve[0].precision] + [p.precision for p in curve], where="pre",
            label=f"AURC {summary['aurc']:.3f}")
    for target, style in zip(selective.PRECISION_TARGETS, (":", "--")):
        coverage = summary[f"coverage@{round(target * 100)}"]
        ax.axhline(target, color="grey", linestyle=style, label=f"precision {target:.0%}: coverage {coverage:.2f}")
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("precision (answers right, F1 >= 0.5)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def _plot_reliability(records: Sequence[dict], metrics: dict) -> str | None:
    scores, right, summary = _selective(records, metrics)
    bins = selective.reliability(scores, right)
    if not bins:
        return None
    fig = _figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    ax.bar([b.low for b in bins], [b.accuracy for b in bins], width=[b.high - b.low for b in bins], align="edge",
           alpha=0.6, edgecolor="black", label=f"share right (ECE {summary['ece']:.3f})")
    ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], "o", color="black", markersize=3)
    for b in bins:
        ax.annotate(str(b.count), (b.low + (b.high - b.low) / 2, b.accuracy), ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("confidence of the best answer (bins; numbers: questions)")
    ax.set_ylabel("share of those answers right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def _plot_latency(records: Sequence[dict]) -> str | None:
    stages = {s: [r["timings"][f"{s}_ms"] for r in records if not math.isnan(r["timings"][f"{s}_ms"])]
              for s in ("retrieve", "read", "total")}
    stages = {s: v for s, v in stages.items() if v}
    if not stages:
        return None
    fig = _figure()
    ax = fig.subplots()
    # Upright boxes: the orientation argument needs matplotlib 3.10 and vert is deprecated from 3.11.
    ax.boxplot(list(stages.values()), whis=(5, 95))
    ax.set_xticks(range(1, len(stages) + 1), list(stages))
    ax.set_ylabel("milliseconds (whiskers: 5th and 95th percentiles)")
    return _png(fig)
