"""Write the SQuAD-format files the shipped calibrator was fitted and measured on, from ../shared/data.

The split follows the reader's training split (``qa.squad.is_holdout``, 20% of articles held out):

- fit: SQuAD 2.0 dev's articles the reader trained on (every 3rd question, by a hash of its id: the only
  unanswerable questions to be had), SQuAD v1.1 dev's held-out articles that are not in SQuAD 2.0 dev, and
  SQuADShifts new-wiki's held-out articles (every 2nd question);
- unanswerable questions on articles the reader never saw (calD_swaps): SQuAD 2.0's real ones are all on
  articles the reader trained on (except the test ones), where its no-answer side knows the very questions,
  so a calibrator fitted on them alone trusts the reader too much on new articles. calD rewrites 450
  questions of calB and calC by entity swap (:mod:`qa.training.synthetic`, spaCy: the ``[train]`` extra);
- other registers, so that the calibrator does not learn Wikipedia's habits alone (calE_amazon,
  calF_reddit): SQuADShifts Amazon reviews' and Reddit's held-out articles, in file order until 500
  questions each, and calG_swaps: 450 entity-swap rewrites of their questions, so that these
  answerable-only sets don't tilt the fit towards answering;
- test: SQuAD 2.0 dev's held-out articles (all questions) and the same articles' SQuAD v1.1 questions
  (test_v1held: answerable only, several gold answers each), COVID-QA's held-out papers (test_covid: 16 of
  98, 240 questions; the reader trained on the others), and SleepQA dev as it is (``qa eval squad --open``
  reads its DPR-style file).

Then, for each file: ``qa eval squad --open FILE --out runs/open/NAME``, and
``qa eval fit-calibrator --train runs/open/cal*/predictions.jsonl --test ...``.

Example:
    python -m benchmarks.calibration_sets ../shared/data runs/calibration
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from qa.squad import is_holdout


def _every(articles: list[dict], keep: int) -> list[dict]:
    """The articles with every ``keep``-th question (by a hash of its id), paragraphs kept whole."""
    return [{"title": a["title"], "paragraphs": [
        {"context": p["context"],
         "qas": [q for q in p["qas"] if int(hashlib.sha1(q["id"].encode()).hexdigest()[:8], 16) % keep == 0]}
        for p in a["paragraphs"]]} for a in articles]


def _by_context(articles: list[dict]) -> list[dict]:
    """The held-out contexts of a file that is one "article" of many (SQuADShifts Reddit), each an article
    titled as the reader's split names it (``title#index``: :func:`qa.squad.load_squad`)."""
    (article,) = articles
    units = [{"title": f"{article['title']}#{i}", "paragraphs": [p]} for i, p in enumerate(article["paragraphs"])]
    return [u for u in units if is_holdout(u["title"], 0.2)]


def _first(articles: list[dict], questions: int) -> list[dict]:
    """The first articles, in file order, up to the one that brings their questions to ``questions``."""
    out, n = [], 0
    for a in articles:
        if n >= questions:
            break
        out.append(a)
        n += sum(len(p["qas"]) for p in a["paragraphs"])
    return out


def _covid_held_out(path: Path) -> list[dict]:
    """COVID-QA's held-out papers, titled as the reader's split names them (the file has no titles:
    ``covid-qa-draft-200423#index``, :func:`qa.squad.load_squad`)."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    named = [{**a, "title": f"{path.stem}#{i}"} for i, a in enumerate(articles)]
    return [a for a in named if is_holdout(a["title"], 0.2)]


def swap_set(files: list[Path], n: int = 450, seed: int = 21) -> list[dict]:
    """The articles of ``files`` holding only unanswerable rewrites of their questions (ids end in ``_swap``)."""
    from qa.squad import load_squad
    from qa.training.synthetic import entity_swaps

    swaps = entity_swaps([ex for f in files for ex in load_squad(f)], n=n, seed=seed)
    return [{"title": a["title"], "paragraphs": [
        {"context": p["context"],
         "qas": [{"id": q["id"] + "_swap", "question": swaps[q["id"]], "answers": [], "is_impossible": True}
                 for q in p["qas"] if q["id"] in swaps]}
        for p in a["paragraphs"]]}
        for f in files for a in json.loads(f.read_text(encoding="utf-8"))["data"]]


def write_sets(data: Path, out: Path) -> dict[str, Path]:
    """Write the fit and test files into ``out``; returns their paths by name."""
    load = lambda rel: json.loads((data / rel).read_text(encoding="utf-8"))["data"]  # noqa: E731
    v2 = load("squad/squad-v2.0-dev-half-14articles.json")
    v1 = load("squad/squad-v1.1-dev-40articles.json")
    new_wiki = load("squadshifts/new_wiki_v1.0.json")
    v2_titles = {a["title"] for a in v2}
    sets = {
        "calA_v2train": _every([a for a in v2 if not is_holdout(a["title"], 0.2)], 3),
        "calB_v1held": [a for a in v1 if is_holdout(a["title"], 0.2) and a["title"] not in v2_titles],
        "calC_newwiki": _every([a for a in new_wiki if is_holdout(a["title"], 0.2)], 2),
        "calE_amazon": _first([a for a in load("squadshifts/amazon_reviews_v1.0.json") if is_holdout(a["title"], 0.2)], 500),
        "calF_reddit": _first(_by_context(load("squadshifts/reddit_v1.0.json")), 500),
        "test_v2held": [a for a in v2 if is_holdout(a["title"], 0.2)],
        # The same 2 articles as SQuAD v1.1 has them (all answerable, several gold answers a question).
        "test_v1held": [a for a in v1 if is_holdout(a["title"], 0.2) and a["title"] in v2_titles],
        "test_covid": _covid_held_out(data / "covid_qa" / "covid-qa-draft-200423.json"),
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, articles in sets.items():
        paths[name] = out / f"{name}.json"
        paths[name].write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    paths["calD_swaps"] = out / "calD_swaps.json"
    articles = swap_set([paths["calB_v1held"], paths["calC_newwiki"]])
    paths["calD_swaps"].write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    paths["calG_swaps"] = out / "calG_swaps.json"
    articles = swap_set([paths["calE_amazon"], paths["calF_reddit"]])
    paths["calG_swaps"].write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("out", type=Path, help="where to write the files")
    args = parser.parse_args()
    for name, path in write_sets(args.data, args.out).items():
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        questions = [q for a in articles for p in a["paragraphs"] for q in p["qas"]]
        print(f"{path}: {len(articles)} articles, {len(questions)} questions "
              f"({sum(bool(q.get('is_impossible')) for q in questions)} unanswerable)")


if __name__ == "__main__":
    main()
