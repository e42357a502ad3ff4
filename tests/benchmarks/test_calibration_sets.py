"""The calibration sets follow the reader's own article split (benchmarks/calibration_sets.py)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.calibration_sets import _by_context, _covid_held_out, _first
from qa.squad import is_holdout, load_squad


def _article(title: str, contexts: int, questions_each: int = 1) -> dict:
    return {"title": title, "paragraphs": [
        {"context": f"{title} context {i}.",
         "qas": [{"id": f"{title}-{i}-{q}", "question": "What?", "answers": [{"text": "context", "answer_start": len(title) + 1}]}
                 for q in range(questions_each)]} for i in range(contexts)]}


def test_a_one_article_file_is_held_out_by_context_as_the_reader_split_it(tmp_path: Path):
    """SQuADShifts Reddit is one "article" of many contexts: the reader's split (load_squad) names each
    context ``title#index``; the held-out units chosen here are exactly those."""
    data = {"data": [_article("Reddit", 60)]}
    (tmp_path / "r.json").write_text(json.dumps(data))
    held_by_reader = {ex.context for ex in load_squad(tmp_path / "r.json") if is_holdout(ex.title, 0.2)}
    units = _by_context(data["data"])
    assert held_by_reader and {u["paragraphs"][0]["context"] for u in units} == held_by_reader
    assert all(u["title"].startswith("Reddit#") and len(u["paragraphs"]) == 1 for u in units)


def test_first_articles_up_to_a_question_count():
    articles = [_article(f"A{i}", 2, 3) for i in range(10)]  # 6 questions each
    assert [a["title"] for a in _first(articles, 13)] == ["A0", "A1", "A2"]  # 6, 12, then 18 >= 13
    assert [a["title"] for a in _first(articles, 12)] == ["A0", "A1"]
    assert len(_first(articles, 1000)) == 10


def test_untitled_papers_are_held_out_as_the_reader_split_them(tmp_path: Path):
    """COVID-QA's articles have no titles: the reader's split (load_squad) names each ``stem#index``;
    the held-out papers written for the test set are exactly those, with that title."""
    articles = [{k: v for k, v in _article(f"P{i}", 1).items() if k != "title"} for i in range(40)]
    path = tmp_path / "covid.json"
    path.write_text(json.dumps({"data": articles}))
    held_by_reader = {ex.context for ex in load_squad(path) if is_holdout(ex.title, 0.2)}
    held = _covid_held_out(path)
    assert held_by_reader and {a["paragraphs"][0]["context"] for a in held} == held_by_reader
    assert all(a["title"].startswith("covid#") for a in held)
