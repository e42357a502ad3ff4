"""Running the ``qa`` command in-process as a shell would: its exit status, whichever way it exits."""

from __future__ import annotations

from typing import Sequence

from qa.cli import main


def exit_status(argv: Sequence[str], **kwargs) -> int:
    """``main(argv, **kwargs)``'s exit status: what it returns, or the status of the ``SystemExit`` argparse raises
    when it refuses a command line."""
    try:
        return main(list(argv), **kwargs)
    except SystemExit as exit_:
        return exit_.code
