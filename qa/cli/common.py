"""What the ``qa`` subcommands share: defaults, argument checks, reading the question, reporting errors."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from qa.errors import MissingPath, UserError
from qa.retrieval import DEFAULT_MODE, MODES

logger = logging.getLogger(__name__)

PROGRESS_LOGGER = "qa.cli"  # what the commands log at INFO is their progress, shown without -v
DEFAULT_DOCS = "seeds"
DEFAULT_INDEX = "embeddings"
INDEX_HELP = ("the index: a folder (default: embeddings), milvus:PATH.db (Milvus Lite) or http://HOST:PORT "
              "(a Milvus server; token from QA_MILVUS_TOKEN)")
STDIN = "-"  # a question given as "-" is read from standard input


class _ProgressFormatter(logging.Formatter):
    """The command's own progress (INFO from ``qa.cli``) as its bare message; anything else with its level
    and logger, so a warning stands out from progress."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO and record.name.startswith(f"{PROGRESS_LOGGER}."):
            return record.getMessage()
        return super().format(record)


class _AboveProgressBars(logging.StreamHandler):
    """Writes each line above tqdm's progress bars (a warning logged while a bar is drawn would otherwise
    be glued to the end of the bar's line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own contract: a handler reports, never raises
            self.handleError(record)


def configure_logging(verbose: bool = False) -> None:
    """Logging for a command line entry point (never called by the library): the command's progress at
    INFO, problems at WARNING and above, on standard error above any progress bar; ``verbose`` adds every
    module's INFO (what loaded, each question answered)."""
    handler = _AboveProgressBars(sys.stderr)
    handler.setFormatter(_ProgressFormatter())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)


def quiet_libraries() -> None:
    """Keep the model libraries' own chatter (transformers' "Loading weights" bar and load report, the
    Hugging Face hub's bars, Milvus Lite's traceback) off the terminal; a user's own setting of these
    variables wins.

    Called by the entry points at default verbosity, before the libraries are imported (they read
    the variables then), never by the library. The product's own progress bars are not affected.
    """
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Milvus Lite logs a traceback when it can't open a .db (held by another process, not writable);
    # qa.stores.milvus.store turns that failure into one line of its own.
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
    if "transformers" in sys.modules:  # already imported (e.g. main() called in-process): switch it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


class Parser(argparse.ArgumentParser):
    """The parser of ``qa`` and of each of its commands.

    A usage error is one line (``qa eval squad: error: ... (see qa eval squad --help)``, status 2), as
    the commands' own errors are. A parser with a ``default_command`` runs that subcommand when its
    arguments name none: bare ``qa eval [options]`` is ``qa eval questions [options]``.
    """

    default_command: str | None = None

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        if self.default_command is not None:
            args = list(sys.argv[1:] if args is None else args)
            # An option (not help) or nothing names no subcommand; a word does, and a mistyped one is refused.
            if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
                args = [self.default_command, *args]
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # refused by the subcommand that was given them, whose --help lists what it takes
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The innermost subcommand's parser that ``parsed`` went through (this one if it has none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):  # argparse keeps its subcommands only here
                chosen = action.choices.get(getattr(parsed, action.dest, None))
                if chosen is not None:
                    return chosen._chosen(parsed) if isinstance(chosen, Parser) else chosen
        return self

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def probability(text: str) -> float:
    """An argparse ``type``: a number between 0 and 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum``."""

    def whole_number(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    whole_number.__name__ = "whole number"  # argparse names the type so in "invalid whole number value: 'x'"
    return whole_number


def more_than_zero(text: str) -> float:
    """An argparse ``type``: a number greater than 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def zero_or_more(text: str) -> float:
    """An argparse ``type``: a number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def port_number(text: str) -> int:
    """An argparse ``type``: a TCP port, 0 (any free port) to 65535."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {text}")
    return value


more_than_zero.__name__ = zero_or_more.__name__ = "number"  # "invalid number value: 'x'"
port_number.__name__ = "port number"


def check_reader(reader: str | None, option: str = "--reader") -> None:
    """Raise :class:`MissingPath` unless ``reader`` is a shipped reader's name or an existing folder; ``None`` passes."""
    from qa.reading.names import READER_NAMES

    if reader is not None and reader not in READER_NAMES and not Path(reader).is_dir():
        raise MissingPath(f"No reader {reader!r}: pass {option} {' or '.join(READER_NAMES)}, or a folder that "
                          "qa train-reader wrote.")


def read_question(arg: str) -> str:
    """The question given on the command line, or read from standard input when it is ``-``.

    Raises:
        InvalidInput: not UTF-8 text, or empty.
    """
    from qa.answering.question import check_question

    if arg == STDIN:
        raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        # Bad bytes become lone surrogates, which check_question refuses; a byte order mark is dropped.
        arg = raw.decode("utf-8-sig", errors="surrogateescape") if isinstance(raw, bytes) else raw
    return check_question(arg)


SEARCH_K = 5  # passages qa search lists by default


def retrieval_args(p: argparse.ArgumentParser) -> None:
    """The arguments ``qa search`` and ``qa ask`` share."""
    p.add_argument("question", help=f"the question, or {STDIN} to read it from standard input")
    p.add_argument("-k", type=at_least(1), default=None,
                   help=f"passages to retrieve (default: search {SEARCH_K}; ask as many as the reader's calibration "
                        "was fitted on)")
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE)
    p.add_argument("--index", default=DEFAULT_INDEX, help=INDEX_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")


def reader_runtime_arg(p: argparse.ArgumentParser) -> None:
    """``--reader-runtime``: how the reader's model runs (``qa ask``, ``qa serve``)."""
    from qa.reading.runtimes import DEFAULT_RUNTIME, RUNTIMES  # light: no numpy, no model library

    p.add_argument("--reader-runtime", choices=RUNTIMES, default=None,
                   help=f"how the reader runs: ONNX Runtime fp32 or int8 weights, or torch with bf16 autocast, "
                        f"bf16 weights or fp32 (default: {DEFAULT_RUNTIME}; see benchmarks/speed.py runtimes)")


def runtime_kwargs(args: argparse.Namespace) -> dict:
    """``{"reader_runtime": ...}`` for ``QA.load`` when ``--reader-runtime`` was given, else ``{}``."""
    runtime = getattr(args, "reader_runtime", None)
    return {"reader_runtime": runtime} if runtime else {}


def passage_rows(hits, documents) -> list[dict]:
    """The JSON rows of retrieved passages (as ``qa search --json`` prints them)."""
    return [h.to_dict(documents[h.passage.doc_id].title) for h in hits]


def one_line(text: str) -> str:
    """``text`` with its whitespace, newlines included, collapsed to single spaces."""
    return " ".join(str(text).split())


def printable(text: object) -> str:
    """``text`` as a terminal may show it: each character that is not printable (an escape, a
    right-to-left override, a newline, a lone surrogate from an undecodable file name) written as its
    Python escape (``\\x1b``, ``\\u202e``), so a file's name or text can't drive the terminal.

    Example:
        >>> printable("red\\x1b[31m.txt")
        'red\\\\x1b[31m.txt'
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


PIPE_CLOSED = 128 + 13  # the status of a command killed by SIGPIPE, which shells and `set -o pipefail` know


def _stdout_is_pipe() -> bool:
    """Whether standard output is a pipe (a BrokenPipeError elsewhere, e.g. a socket, is a fault to report)."""
    import os
    import stat

    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it again at exit does not fail (Python's advice)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (tests capture it)
        pass


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str,
                verbose: bool = False) -> int:
    """Run a subcommand's handler and report what went wrong.

    A :class:`qa.errors.UserError` prints ``<prog>: error: <message>`` and returns 2, and so does a
    ``PermissionError`` (the machine's permissions, not a fault of this code). Any other exception is a
    fault in this code: it prints ``<prog>: internal error: <type>: <message>`` (with the traceback when
    ``verbose``) and returns 1. When whatever reads the output goes away (``qa ask ... | head -1``), the
    command stops quietly with status 141, as one killed by SIGPIPE does.
    """
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe is found here, not at exit where Python would print about it
        return code
    except BrokenPipeError as err:
        if not _stdout_is_pipe():
            return _report(err, prog, verbose)
        _silence_stdout()
        return PIPE_CLOSED
    except UserError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except PermissionError as err:  # the machine's permissions, which the user can fix, wherever they were met
        where = printable(err.filename) if err.filename else one_line(err)
        print(f"{prog}: error: permission denied: {where}: give this user access to it, or choose another path.",
              file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the entry point's last word on a fault: say it, don't hide it
        return _report(err, prog, verbose)


def _report(err: BaseException, prog: str, verbose: bool) -> int:
    """Print an internal error (the traceback when ``verbose``); returns 1."""
    if verbose:
        traceback.print_exception(err)
        hint = ""
    else:
        hint = " (run with -v for the traceback)"
    print(f"{prog}: internal error: {type(err).__name__}: {one_line(err)}{hint}", file=sys.stderr)
    return 1


def print_answer(data: dict) -> None:
    """Print an answer (the ``qa ask --json`` object, which a server's ``/ask`` returns too) for a person:
    the answer and the chance that it is right, the quoted sentence, one line per citation; or, when the
    pipeline abstained, the closest passages."""
    if data["abstained"]:
        print("The documents don't say. Closest passages:")
        for row in data["passages"][:3]:
            print(f"  - {printable(row['title'])}: {printable(' '.join(row['text'].split())[:200])}…")
        return
    print(f"{printable(data['answer'])}    ({round(100 * data['score'])}% likely right)")
    print(f"  “{printable(' '.join(data['evidence'].split()))}”")
    for n, c in enumerate(data["citations"], start=1):
        where = c.get("location") or f"chars {c['start']}-{c['end']}"
        print(f"  [{n}] {printable(c['title'])} ({printable(c['doc_id'])}, {printable(where)})")
