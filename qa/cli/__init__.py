"""The ``qa`` command: index, search, ask, eval, serve, train-reader.

Each subcommand lives in its own module (``qa/cli/<command>.py``): a parser, and a handler that checks
its arguments, imports the library it needs, calls it and prints. Errors a user can fix
(:class:`qa.errors.UserError`: a missing folder, a stale index, an empty question) print one line and
exit with status 2; any other exception is reported as an internal error (status 1; ``-v`` shows the
traceback).

Only the module of the command being run is imported (``qa ask`` never loads the evaluation, serving
or training code, nor what they import); ``qa --help`` and a mistyped command load them all.

:func:`main` is the one entry point: ``qa`` (``[project.scripts]``) and ``python app.py``, which is
``qa serve`` under another name.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Sequence

from qa.cli.common import Parser, configure_logging, quiet_libraries, run_command

logger = logging.getLogger(__name__)

# Each command's module, in the order ``qa --help`` lists them.
COMMANDS = {
    "index": "qa.cli.index",
    "search": "qa.cli.search",
    "ask": "qa.cli.ask",
    "train-reader": "qa.cli.train",
    "eval": "qa.cli.evaluate",
    "serve": "qa.cli.serve",
}


def build_parser(commands: Sequence[str] | None = None) -> Parser:
    """The ``qa`` parser with ``commands`` (default: every subcommand); only their modules are imported."""
    parser = Parser(prog="qa", description="Question answering over your documents, with citations.")
    _verbose_arg(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in commands or COMMANDS:
        importlib.import_module(COMMANDS[name]).register(sub)
    return parser


def command_parser(command: str, prog: str) -> Parser:
    """The parser of one ``command`` as a program of its own named ``prog`` (``python app.py`` is ``qa serve``)."""
    sub = Parser(prog=prog).add_subparsers()
    importlib.import_module(COMMANDS[command]).register(sub)
    parser = sub.choices[command]
    parser.prog = prog
    _verbose_arg(parser)
    return parser


def _verbose_arg(parser: Parser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details; show the traceback of an internal error")


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs (its first word that is not an option), or ``None`` if it names none."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None, *, command: str | None = None, prog: str = "qa") -> int:
    """The entry point: parse, configure logging, run the command, report what went wrong; returns the exit status.

    Args:
        argv: the arguments (default: the process's).
        command: run this one command, its options at the top (``python app.py`` runs
            ``main(command="serve", prog="app.py")``); default: ``qa`` with every command.
        prog: the program's name, which its usage and errors start with.
    """
    from qa.errors import offline_mode

    argv = sys.argv[1:] if argv is None else list(argv)
    offline_mode()
    if command is None:
        named = command_of(argv)
        parser = build_parser([named] if named else None)
    else:
        parser = command_parser(command, prog)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not args.verbose:
        quiet_libraries()
    return run_command(args.func, args, prog, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
