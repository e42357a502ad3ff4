"""Guard: a fresh question-set evaluation on the bundled index must stay at its floors (eval/floors.json).

Runs :func:`evaluate_questions` over eval/questions.jsonl with the real index, reader and shipped
calibration (about 20 s to a few minutes on two cores, depending on load), prints the figures, and
compares them with the floors: each metric at least its floor (at most its ceiling), and each floor
no further below today's figure than the margin eval/README.md sets, so floors stay honest. When a
change moves a metric on purpose, re-measure and update the floors as eval/README.md says; never
lower a floor only to make this pass.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers.corpus import REPO_ROOT

from qa.evaluation.runner import evaluate_questions, load_questions

FLOORS = json.loads((REPO_ROOT / "eval" / "floors.json").read_text(encoding="utf-8"))
QUESTIONS = REPO_ROOT / "eval" / "questions.jsonl"
# The questions each metric is a share of (keys of the metrics' top level, or a dotted path).
OVER = {"retrieval": "answerable", "answers": "answerable", "abstention.unanswerable_refused": "unanswerable",
        "abstention.answerable_wrongly_refused": "answerable", "citations": "citations.answered"}


def _value(metrics: dict, dotted: str):
    value = metrics
    for key in dotted.split("."):
        value = value[key]
    return value


def _questions_behind(metrics: dict, name: str) -> int:
    key = next(OVER[prefix] for prefix in sorted(OVER, key=len, reverse=True) if name.startswith(prefix))
    return _value(metrics, key)


def margin(n: int) -> float:
    """eval/README.md's margin between a measurement and its floor: one question plus a little, at least 0.03."""
    return max(0.03, 1 / n + 0.005)


@pytest.fixture(scope="module")
def metrics(bundled_qa) -> dict:
    config = FLOORS["measured"]["config"]
    result = evaluate_questions(bundled_qa, load_questions(QUESTIONS), k=config["k"], mode=config["mode"])
    m = result.metrics
    print(f"\nquestion set, fresh run (threshold {m['config']['threshold']:.6f}, k {config['k']}, {config['mode']}):")
    for kind, bounds in (("min", FLOORS["min"]), ("max", FLOORS["max"])):
        for name, bound in sorted(bounds.items()):
            print(f"  {name:40} {_value(m, name):.4f}  ({kind} {bound}, recorded {FLOORS['measured']['values'][name]:.4f}, "
                  f"over {_questions_behind(m, name)} questions)")
    return m


@pytest.mark.integration
def test_the_run_uses_the_configuration_the_floors_were_measured_with(metrics):
    # The floors hold for the shipped calibration; a new calibration means re-measuring them (eval/README.md).
    assert metrics["questions"] == FLOORS["measured"]["questions"]
    assert metrics["config"]["threshold"] == pytest.approx(FLOORS["measured"]["config"]["threshold"], abs=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(FLOORS["min"]))
def test_at_least_the_floor(metrics, name):
    assert _value(metrics, name) >= FLOORS["min"][name], (
        f"{name} = {_value(metrics, name):.4f}, below its floor {FLOORS['min'][name]} (see eval/README.md)")


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(FLOORS["max"]))
def test_at_most_the_ceiling(metrics, name):
    assert _value(metrics, name) <= FLOORS["max"][name], (
        f"{name} = {_value(metrics, name):.4f}, above its ceiling {FLOORS['max'][name]} (see eval/README.md)")


def floor_problems(metrics: dict, floors: dict) -> list[str]:
    """Bounds that today's figures cross, or that sit further from them than eval/README.md's margin
    (plus one more margin for drift and 0.01 for rounding outwards): a floor far below what the system
    now does guards nothing."""
    problems = []
    for kind in ("min", "max"):
        for name, bound in sorted(floors[kind].items()):
            value = _value(metrics, name)
            gap = value - bound if kind == "min" else bound - value
            allowed = 2 * margin(_questions_behind(metrics, name)) + 0.01
            if math.isnan(value) or gap < 0:
                problems.append(f"{name} = {value:.4f} crosses its {kind} {bound}")
            elif gap > allowed:
                problems.append(f"{name}: {kind} {bound} is {gap:.3f} from today's {value:.4f} (allowed {allowed:.3f}): "
                                "raise it as eval/README.md says")
    return problems


def test_floor_problems_on_made_up_figures():
    # 110 answerable and 13 unanswerable questions: margins 0.03 and 1/13 + 0.005 = 0.0819, so a floor may sit
    # at most 0.07 (answerable) or 0.1738 (unanswerable) below today's figure.
    m = {"answerable": 110, "unanswerable": 13, "answers": {"f1": 0.80},
         "abstention": {"unanswerable_refused": 0.70, "answerable_wrongly_refused": 0.01}}
    honest = {"min": {"answers.f1": 0.75, "abstention.unanswerable_refused": 0.60},
              "max": {"abstention.answerable_wrongly_refused": 0.05}}
    assert floor_problems(m, honest) == []
    stale = {"min": {"answers.f1": 0.72, "abstention.unanswerable_refused": 0.50},
             "max": {"abstention.answerable_wrongly_refused": 0.10}}
    assert [p.split(":")[0] for p in floor_problems(m, stale)] == [
        "abstention.unanswerable_refused", "answers.f1", "abstention.answerable_wrongly_refused"]
    crossed = {"min": {"answers.f1": 0.81}, "max": {}}
    assert floor_problems(m, crossed) == ["answers.f1 = 0.8000 crosses its min 0.81"]


@pytest.mark.integration
def test_floors_are_close_to_todays_figures(metrics):
    assert floor_problems(metrics, FLOORS) == []
