"""``qa search``: the passages that best match a question."""

from __future__ import annotations

import argparse
import json

from qa.cli.common import SEARCH_K, passage_rows, printable, read_question, retrieval_args
from qa.errors import InvalidInput


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``qa search`` to the ``qa`` command."""
    p = sub.add_parser("search", help="retrieve the passages that best match a question")
    retrieval_args(p)
    p.add_argument("--doc", action="append", help="search only this document id (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the index, search and print the passages."""
    question = read_question(args.question)
    if args.doc is not None and not all(isinstance(d, str) and d.strip() for d in args.doc):
        raise InvalidInput("--doc takes a document id, e.g. --doc 000_514f065cc880a116.")

    from qa.retrieval.retriever import Retriever

    retriever = Retriever.load(args.index)
    hits = retriever.search(question, top_k=SEARCH_K if args.k is None else args.k, mode=args.mode, doc_ids=args.doc)
    rows = passage_rows(hits, retriever.documents)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        snippet = " ".join(row["text"].split())
        print(f"{row['rank']}. [{row['score']:.4f}] {printable(row['title'])} ({printable(row['doc_id'])}, "
              f"chars {row['start']}-{row['end']})")
        print(f"   {printable(snippet[:300])}{'…' if len(snippet) > 300 else ''}")
    return 0
