"""``qa ask`` and ``qa search`` import only what they use (no Gradio, matplotlib, training or evaluation
code) and print nothing but their result: no progress bar or load report from the libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("gradio", "matplotlib", "qa.training", "qa.training.trainer", "qa.app.ui", "qa.evaluation",
         "qa.cli.evaluate", "qa.cli.serve", "qa.cli.train")

PROBE = """
import json, sys
from qa.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_question_command_imports_no_app_plotting_training_or_evaluation(tmp_path, command):
    """Run the handler as far as a missing index (the library is imported by then)."""
    done = subprocess.run([sys.executable, "-c", PROBE, command, "When?", "--index", str(tmp_path / "none")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "No index" in done.stderr, done.stderr
    assert result["loaded"] == [], f"qa {command} imported {result['loaded']}"


def test_the_full_help_still_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "qa.cli", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for command in ("index", "search", "ask", "train-reader", "eval", "serve"):
        assert command in done.stdout


def _quiet_env() -> dict:
    """The environment of a user who set nothing: none of the libraries' verbosity switches."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")}
    return env


@pytest.mark.integration
@pytest.mark.parametrize("argv", [["ask", "When do primary care trusts go live?"],
                                  ["ask", "When do primary care trusts go live?", "--json"],
                                  ["search", "When do primary care trusts go live?", "-k", "2"]])
def test_a_question_prints_only_its_result(bundled_index, argv):
    done = subprocess.run([sys.executable, "-m", "qa.cli", *argv, "--index", str(bundled_index)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, env=_quiet_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"qa {argv[0]} wrote to stderr: {done.stderr[:500]!r}"
    if "--json" in argv:
        assert json.loads(done.stdout)["answer"] == "April 2000"  # the whole of stdout is the JSON
    elif argv[0] == "ask":
        assert done.stdout.startswith("April 2000"), done.stdout
    else:
        assert done.stdout.startswith("1. ["), done.stdout


@pytest.mark.integration
def test_verbose_still_logs_loading(bundled_index):
    done = subprocess.run([sys.executable, "-m", "qa.cli", "-v", "ask", "When do primary care trusts go live?",
                           "--index", str(bundled_index)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env=_quiet_env())
    assert done.returncode == 0, done.stderr
    assert "loading reader" in done.stderr


@pytest.mark.integration
def test_a_cold_ask_imports_neither_torch_nor_transformers(bundled_index):
    """With the reader's ONNX export cached, the default runtime reads with ONNX Runtime and tokenizers alone."""
    from qa.reading.reader import DEFAULT_RUNTIME, Reader

    if not DEFAULT_RUNTIME.startswith("onnx"):
        pytest.skip(f"the default reader runtime is {DEFAULT_RUNTIME}")
    Reader()._model()  # export once, in this process, if not cached yet
    probe = PROBE.replace("%r" % (HEAVY,), "%r" % (HEAVY + ("torch", "transformers", "sentence_transformers"),))
    done = subprocess.run([sys.executable, "-c", probe, "ask", "When do primary care trusts go live?",
                           "--index", str(bundled_index)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr
    assert done.stdout.startswith("April 2000")
    assert result["loaded"] == [], f"qa ask imported {result['loaded']}"


def test_the_cli_offers_the_retrieval_modes_and_defaults_to_hybrid():
    import argparse

    from qa.cli.common import retrieval_args

    parser = argparse.ArgumentParser()
    retrieval_args(parser)
    mode = next(a for a in parser._actions if a.dest == "mode")
    assert sorted(mode.choices) == ["bm25", "dense", "hybrid"] and mode.default == "hybrid"


def test_asking_a_server_loads_no_numpy_index_or_model_code(tmp_path):
    from benchmarks.loadtest import free_port

    probe = PROBE.replace("%r" % (HEAVY,), "%r" % (HEAVY + ("numpy", "qa.retrieval.retriever", "qa.reading.reader",
                                                            "onnxruntime", "torch"),))
    done = subprocess.run([sys.executable, "-c", probe, "ask", "When?", "--server", f"http://127.0.0.1:{free_port()}/"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "No qa serve answers" in done.stderr, done.stderr
    assert result["loaded"] == [], f"qa ask --server imported {result['loaded']}"
