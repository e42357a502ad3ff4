"""Build the passage groups a shared-normalisation run trains on (``qa train-reader --groups``).

The training articles (the same article split as ``qa train-reader``: ``is_holdout``) are indexed with the
product's own chunking and embedder; every unanswerable question, a sample of answerable ones and
entity-swapped rewrites of others (:mod:`qa.training.synthetic`) are searched over their article, and each
becomes a group of its top passages (:mod:`qa.training.passages`). ``--single N`` adds N more answerable
questions as one-passage groups of their own paragraph.

Example:
    python -m qa.training.build_groups --data ../shared/data/squad/*.json --out runs/mp/groups.jsonl \\
        --work runs/mp/work --answerable 7000 --swaps 1500 --exclude runs/calibration/calA_v2train.json
"""

from __future__ import annotations

import argparse
import logging
import random
from collections import Counter

from qa.squad import dedupe, load_squad, question_ids, split_by_article
from qa.training.passages import retrieved_groups, single_groups, write_groups
from qa.training.synthetic import entity_swaps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", nargs="+", required=True, help="SQuAD-format files (as for qa train-reader)")
    parser.add_argument("--out", required=True, help="the groups file to write (JSON lines)")
    parser.add_argument("--work", required=True, help="a new folder for the documents and index")
    parser.add_argument("--top-k", type=int, default=4, help="passages per question")
    parser.add_argument("--answerable", type=int, default=7000, help="answerable questions to sample")
    parser.add_argument("--swaps", type=int, default=1500, help="entity-swapped unanswerable questions to make")
    parser.add_argument("--single", type=int, default=0, help="answerable questions (none of those above) added "
                        "as one-passage groups of their own paragraph: cheap span-reading practice")
    parser.add_argument("--holdout", type=float, default=0.2, help="share of articles held out (as in training)")
    parser.add_argument("--exclude", nargs="*", default=[], help="SQuAD files whose questions are left out "
                        "(e.g. the calibrator's fit set)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rng = random.Random(args.seed)
    examples = dedupe(ex for path in args.data for ex in load_squad(path))
    train, _ = split_by_article(examples, args.holdout)
    excluded = set().union(*(question_ids(p) for p in args.exclude)) if args.exclude else set()
    usable = [ex for ex in train if ex.id not in excluded]
    unanswerable = [ex for ex in usable if ex.is_impossible]
    answerable = [ex for ex in usable if not ex.is_impossible]
    rng.shuffle(answerable)
    picked = answerable[: args.answerable]
    swaps = entity_swaps(answerable[args.answerable:], args.swaps, seed=args.seed) if args.swaps else {}
    selected = {ex.id for ex in unanswerable + picked}
    groups = retrieved_groups(usable, args.work, top_k=args.top_k, swaps=swaps, selected=selected)
    if args.single:
        groups += single_groups([ex for ex in answerable[args.answerable:] if ex.id not in swaps][: args.single])
    write_groups(groups, args.out)
    print(f"{args.out}: {len(groups)} groups {dict(Counter(g.kind for g in groups))}; "
          f"{len(excluded & {ex.id for ex in train})} excluded questions")


if __name__ == "__main__":
    main()
