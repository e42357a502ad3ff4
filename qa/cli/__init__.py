"""The ``qa`` command: index, search, ask, eval, serve, train-reader.

Each subcommand lives in its own module (``qa/cli/<command>.py``): a parser, and a handler that checks
its arguments, imports the library it needs, calls it and prints. Errors a user can fix
(:class:`qa.errors.UserError`: a missing folder, a stale index, an empty question) print one line and
exit with status 2; any other exception is reported as an internal error (status 1; ``-v`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys

from qa.cli import ask, evaluate, index, search, serve, train
from qa.cli.common import run_command

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``qa`` parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="qa", description="Question answering over your documents, with citations.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details; show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True)
    index.register(sub)
    search.register(sub)
    ask.register(sub)
    train.register(sub)
    evaluate.register(sub)
    serve.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``qa`` entry point; returns the exit status."""
    from qa.errors import offline_mode

    offline_mode()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args.func, args, "qa", verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
