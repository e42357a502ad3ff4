"""What the commands write to the terminal: their progress as plain lines, problems as warnings on lines of
their own (never glued to a progress bar), and a summary that counts the files left out.

Each command runs in a fresh interpreter, as a user runs it: logging is configured by the entry point.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_PROBE = """
import logging, sys
from qa.cli.common import configure_logging
configure_logging(verbose=len(sys.argv) > 1)
logging.getLogger("qa.cli.serve").info("Loading the models ...")
logging.getLogger("qa.stores.local.build").info("index x: 1 documents")
logging.getLogger("qa.stores.jobs").warning("skipping broken.pdf: unreadable PDF")
"""


def _python(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def _lines(stream: str) -> list[str]:
    """What a terminal shows: a carriage return (a progress bar redrawn) starts the line again."""
    return [part for line in stream.split("\n") for part in line.split("\r") if part.strip()]


def test_progress_is_info_and_plain_problems_are_warnings():
    done = _python("-c", LOG_PROBE)
    assert done.returncode == 0, done.stderr
    # The library's own INFO stays out of the way unless asked for (-v); the command's progress does not.
    assert done.stderr.splitlines() == ["Loading the models ...",
                                        "WARNING qa.stores.jobs: skipping broken.pdf: unreadable PDF"]
    verbose = _python("-c", LOG_PROBE, "-v")
    assert "INFO qa.stores.local.build: index x: 1 documents" in verbose.stderr.splitlines()


@pytest.mark.integration
def test_indexing_a_folder_with_an_unreadable_file(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.txt").write_text("The ferry leaves at nine every morning from the north pier.\n", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a PDF\n%%EOF\n")
    done = _python("-m", "qa.cli", "index", "--docs", str(docs), "--out", str(tmp_path / "index"))
    assert done.returncode == 0, done.stderr
    lines = _lines(done.stderr)
    warnings = [line for line in lines if "WARNING" in line]
    # One warning, naming the file, at the start of a line of its own (not after a progress bar's text).
    assert len(warnings) == 1 and warnings[0].startswith("WARNING ") and "broken.pdf" in warnings[0], lines
    assert not [line for line in lines if "Indexed" in line]  # the result is on stdout, not a log line
    assert re.fullmatch(r"Indexed 1 document into 1 passage \(flat\) at \S+ in [\d.]+s: embedded 1; new 1, "
                        r"changed 0, removed 0; 1 file skipped \(broken\.pdf\)\.\n", done.stdout), done.stdout

    again = _python("-m", "qa.cli", "index", "--docs", str(docs), "--out", str(tmp_path / "index"))
    assert again.returncode == 0 and "1 file skipped (broken.pdf); nothing to embed" in again.stdout, again.stdout
