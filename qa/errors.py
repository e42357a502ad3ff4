"""Errors a user can fix, told apart from programming errors.

Everything raised for bad input (an empty question, a missing folder, a stale index, a file that
can't be read) derives from :class:`UserError`: the CLI and the app print its message on one line.
Any other exception is a fault in this code: the CLI says so and shows the traceback with ``-v``.
The subclasses also derive from the built-in they replace (``ValueError``, ``FileNotFoundError``),
so callers that catch those keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input or environment that the user can fix; its message says how."""


class InvalidInput(UserError, ValueError):
    """A bad argument: empty or non-text question, ``top_k < 1``, an unknown mode or document id."""


class MissingPath(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnsafeDestination(UserError, ValueError):
    """Writing there would overwrite or delete something the product did not create."""


def offline_mode() -> None:
    """Keep the Hugging Face libraries off the network (a user's own setting wins).

    Called by the entry points (``qa``, ``app.py``), never on import: the library sets no
    environment variables of its own.
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
