"""Count the flags of each ``qa`` command and subcommand, read from the argparse parsers themselves.

``-h``/``--help`` is not counted; positional arguments are counted apart. A flag a command shares with
another (``--reader``) is counted once per command that takes it: what a user of that command reads in
its ``--help``. The last two rows: the flags summed over every command line, and how many distinct
spellings there are among them.

Example:
    python -m benchmarks.cli_flags            # a table
    python -m benchmarks.cli_flags --json     # {"qa eval squad": {"flags": [...], "positionals": [...]}, ...}
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Iterator, Sequence


def walk(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command line, parser)`` for ``parser`` and every subcommand below it, depth first."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):  # argparse keeps its subcommands only here
            for sub_name, sub in action.choices.items():
                yield from walk(sub, f"{name} {sub_name}")


def arguments(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """The flags (their longest spelling) and the positional arguments ``parser`` itself takes."""
    flags, positionals = [], []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            flags.append(max(action.option_strings, key=len))
        else:
            positionals.append(action.dest)
    return {"flags": flags, "positionals": positionals}


def count(parser: argparse.ArgumentParser, prog: str = "qa") -> dict[str, dict[str, list[str]]]:
    """Every command line's flags and positionals, keyed by the command line (``"qa eval squad"``)."""
    return {name: arguments(p) for name, p in walk(parser, prog)}


def table(counts: dict[str, dict[str, list[str]]]) -> str:
    """One row per command line, then the flags summed over them and the distinct spellings among them."""
    width = max(len(name) for name in counts) + 2
    lines = [f"{'command':{width}}{'flags':>6}{'positionals':>13}"]
    lines += [f"{name:{width}}{len(c['flags']):>6}{len(c['positionals']):>13}" for name, c in counts.items()]
    lines.append(f"{'sum':{width}}{sum(len(c['flags']) for c in counts.values()):>6}"
                 f"{sum(len(c['positionals']) for c in counts.values()):>13}")
    lines.append(f"{'distinct':{width}}{len({f for c in counts.values() for f in c['flags']}):>6}"
                 f"{len({p for c in counts.values() for p in c['positionals']}):>13}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print the flags themselves, as JSON")
    args = parser.parse_args(argv)
    from qa.cli import build_parser

    counts = count(build_parser())
    print(json.dumps(counts, indent=1) if args.json else table(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
