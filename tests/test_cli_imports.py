"""``qa ask`` and ``qa search`` import only what they use: no Gradio, matplotlib or training code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("gradio", "matplotlib", "qa.training", "qa.training.trainer", "qa.app.ui")

PROBE = """
import json, sys
from qa.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_question_command_imports_no_app_plotting_or_training(tmp_path, command):
    """Parse every subcommand, run the handler as far as a missing index (the library is imported by then)."""
    done = subprocess.run([sys.executable, "-c", PROBE, command, "When?", "--index", str(tmp_path / "none")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "No index" in done.stderr, done.stderr
    assert result["loaded"] == [], f"qa {command} imported {result['loaded']}"
