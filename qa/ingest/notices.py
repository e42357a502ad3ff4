"""What the file-format libraries log while one file is read, gathered into one line for that file.

pypdf logs each robustness fix it applies to a damaged PDF as a warning of its own ("Ignoring wrong
pointing object 6 0", "incorrect startxref pointer(1)", ...), several per file and without naming the
file. :func:`gathered` holds those records back while a file is read in this thread and hands them to
the caller, who logs one line that names the file. Records of other threads (another file being read
at the same time) go on to the root logger's handlers as before.

Example:
    >>> with gathered() as notes:
    ...     text = read_pdf(raw)
    >>> notes
    ['Ignoring wrong pointing object 6 0 (offset 0)']
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator

LIBRARIES = ("pypdf",)  # the loggers of the readers that report per-file problems this way

_lock = threading.Lock()
_gathering: dict[int, list[str]] = {}  # thread id -> the messages held back for it
_propagated: dict[str, bool] = {}  # each library logger's own setting, put back when no thread gathers


class _Gather(logging.Handler):
    """Keeps the records of threads that are gathering; passes the others on as propagation would."""

    def emit(self, record: logging.LogRecord) -> None:
        notes = _gathering.get(record.thread)
        if notes is not None:
            notes.append(record.getMessage())
        else:
            logging.getLogger().handle(record)


_HANDLER = _Gather()


@contextlib.contextmanager
def gathered() -> Iterator[list[str]]:
    """The messages the format libraries log in this thread while the block runs, not shown (within
    another such block of the same thread, that block's list).

    While any thread gathers, the libraries' loggers do not propagate; :class:`_Gather` passes on the
    records of threads that are not gathering, so nothing else is lost.
    """
    me = threading.get_ident()
    with _lock:
        outer = _gathering.get(me)
        if outer is None:
            if not _gathering:
                for name in LIBRARIES:
                    logging.getLogger(name).addHandler(_HANDLER)
                    _propagated[name] = logging.getLogger(name).propagate
                    logging.getLogger(name).propagate = False
            _gathering[me] = []
        notes = _gathering[me]
    try:
        yield notes
    finally:
        if outer is None:
            with _lock:
                del _gathering[me]
                if not _gathering:
                    for name in LIBRARIES:
                        logging.getLogger(name).removeHandler(_HANDLER)
                        logging.getLogger(name).propagate = _propagated.pop(name, True)


def summary(notes: list[str], limit: int = 2) -> str:
    """The distinct messages, the first ``limit`` of them quoted and the rest counted, on one line."""
    distinct = list(dict.fromkeys(" ".join(n.split()) for n in notes))
    shown = "; ".join(distinct[:limit])
    more = f" and {len(distinct) - limit} more" if len(distinct) > limit else ""
    return f"{shown}{more}"
