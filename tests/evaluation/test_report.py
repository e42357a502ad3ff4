"""The HTML report renders with any matplotlib the project allows (>= 3.8): no argument newer than 3.8,
and none the installed version deprecates."""

from __future__ import annotations

import functools
import warnings

import pytest
from helpers.scripted_qa import QUESTIONS, FakeQA

from qa.evaluation.report import render_report
from qa.evaluation.runner import evaluate_questions

# Keyword arguments of Axes methods that matplotlib 3.8 does not have: boxplot's orientation (3.10) and
# tick_labels (3.9, was labels), violinplot's orientation (3.10). Only the methods report.py may call are
# wrapped: matplotlib's own internal calls (boxplot -> bxp) pass the new arguments legitimately.
NEWER_THAN_3_8 = {"boxplot": {"orientation", "tick_labels"}, "violinplot": {"orientation"}}


@pytest.fixture
def matplotlib_3_8(monkeypatch):
    """Axes methods that raise TypeError, as matplotlib 3.8 does, on the arguments it lacks."""
    from matplotlib.axes import Axes

    for name, newer in NEWER_THAN_3_8.items():
        original = getattr(Axes, name)

        @functools.wraps(original)
        def strict(self, *args, _original=original, _newer=newer, _name=name, **kwargs):
            unknown = _newer & set(kwargs)
            if unknown:
                raise TypeError(f"{_name}() got an unexpected keyword argument {sorted(unknown)[0]!r} (matplotlib 3.8)")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Axes, name, strict)


def test_report_renders_every_plot_with_matplotlib_3_8_arguments(matplotlib_3_8):
    from matplotlib import MatplotlibDeprecationWarning

    result = evaluate_questions(FakeQA(), QUESTIONS, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MatplotlibDeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)
        html = render_report(result.metrics, result.records, result.sweep)
    assert html.count('src="data:image/png;base64,') == 6  # by kind, scores, sweep, risk-coverage, reliability, latency
