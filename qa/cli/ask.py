"""``qa ask``: answer a question with a verbatim quote and its citation."""

from __future__ import annotations

import argparse
import json

from qa.cli.common import (DEFAULT_INDEX, check_reader, print_answer, probability, read_question, reader_runtime_arg,
                           retrieval_args, runtime_kwargs)
from qa.reading.names import DEFAULT_READER, READER_HELP
from qa.retrieval import DEFAULT_MODE


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``qa ask`` to the ``qa`` command."""
    p = sub.add_parser("ask", help="answer a question with a verbatim quote and its citation")
    retrieval_args(p)
    p.add_argument("--threshold", type=probability, default=None, help="no-answer threshold (default: calibrated)")
    p.add_argument("--reader", default=None, metavar="NAME|DIR", help=f"{READER_HELP} (default: {DEFAULT_READER})")
    p.add_argument("--doc", action="append", metavar="ID",
                   help="answer from this document only (its id, as `qa search --json` shows it); repeat for several")
    reader_runtime_arg(p)
    p.add_argument("--server", default=None, metavar="URL",
                   help="ask the qa serve running at URL (e.g. http://127.0.0.1:7860/) instead of loading the "
                        "models here: answers in its time, with its index, reader and settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, load the index and reader, answer and print."""
    question = read_question(args.question)
    check_reader(args.reader)
    if args.server:
        return _ask_server(args, question)

    from qa.answering.pipeline import QA

    qa = QA.load(args.index, reader=args.reader, threshold=args.threshold, **runtime_kwargs(args))
    limit = {"doc_ids": args.doc} if args.doc else {}
    answer = qa.ask(question, top_k=args.k, mode=args.mode, **limit)
    data = qa.to_json(answer)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_answer(data)
    return 0


def _ask_server(args: argparse.Namespace, question: str) -> int:
    """``qa ask --server URL``: the running app answers (its own -k, mode, threshold and reader)."""
    from qa.cli.remote import ask_server
    from qa.errors import InvalidInput

    local = [option for option, value, default in (("-k", args.k, None), ("--mode", args.mode, DEFAULT_MODE),
                                                   ("--index", args.index, DEFAULT_INDEX),
                                                   ("--threshold", args.threshold, None), ("--reader", args.reader, None),
                                                   ("--reader-runtime", args.reader_runtime, None))
             if value != default]
    if local:
        raise InvalidInput(f"{', '.join(local)} can't be used with --server (the server uses its own settings): "
                           "leave them out, or leave out --server.")
    data = ask_server(args.server, question, args.doc)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_answer(data)
    return 0
