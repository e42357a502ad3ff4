"""Guard: the question-set evaluation on the bundled index must stay above the floors in eval/floors.json.

Runs the real models (one to five minutes on two cores, depending on load). When a change moves a metric
on purpose, re-measure and update the floors as eval/README.md says; never lower a floor only to make this pass.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

from qa.evaluation.runner import evaluate_questions, load_questions

pytestmark = pytest.mark.integration

FLOORS = json.loads((REPO_ROOT / "eval" / "floors.json").read_text(encoding="utf-8"))


def _value(metrics: dict, dotted: str) -> float:
    value = metrics
    for key in dotted.split("."):
        value = value[key]
    return value


@pytest.fixture(scope="module")
def metrics(bundled_qa) -> dict:
    qa = bundled_qa
    config = FLOORS["measured"]["config"]
    questions = load_questions(REPO_ROOT / "eval" / "questions.jsonl")
    return evaluate_questions(qa, questions, k=config["k"], mode=config["mode"]).metrics


@pytest.mark.parametrize("name", sorted(FLOORS["min"]))
def test_at_least_the_floor(metrics, name):
    assert _value(metrics, name) >= FLOORS["min"][name], (
        f"{name} = {_value(metrics, name):.3f}, below its floor {FLOORS['min'][name]} (measured "
        f"{FLOORS['measured']['values'][name]:.3f}; see eval/README.md)")


@pytest.mark.parametrize("name", sorted(FLOORS["max"]))
def test_at_most_the_ceiling(metrics, name):
    assert _value(metrics, name) <= FLOORS["max"][name], (
        f"{name} = {_value(metrics, name):.3f}, above its ceiling {FLOORS['max'][name]} (measured "
        f"{FLOORS['measured']['values'][name]:.3f}; see eval/README.md)")


def test_floors_are_a_little_below_what_was_measured():
    # Floors come from a measurement and sit a few points under it: not invented, not at the measured value.
    for name, floor in FLOORS["min"].items():
        assert floor <= FLOORS["measured"]["values"][name], name
    for name, ceiling in FLOORS["max"].items():
        assert ceiling >= FLOORS["measured"]["values"][name], name
