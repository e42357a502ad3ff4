"""``qa eval``'s subcommands: the command lines the docs give parse, each subcommand takes only its own
options, bad ones are refused in one line with status 2, and fit-calibrator fits and saves through the library."""

from __future__ import annotations

import json
import random
import re
import shlex
from pathlib import Path

import pytest

from benchmarks.cli_flags import count
from helpers.cli import exit_status
from qa.answering.features import FEATURES
from qa.cli import build_parser, main
from qa.reading.reader import DEFAULT_READER_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def documented_command_lines() -> list[tuple[str, list[str]]]:
    """Every ``qa eval`` line in a code block of the README, docs/, eval/ and the model cards, as arguments:
    continued lines joined, comments and redirections cut, ``[optional parts]`` kept."""
    found = []
    files = [REPO_ROOT / "README.md", REPO_ROOT / "eval" / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")),
             *sorted((REPO_ROOT / "qa" / "models").glob("*/MODEL_CARD.md"))]
    for path in files:
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if not line.startswith("qa eval"):
                    continue
                line = re.split(r"\s#|\s>|\|", line)[0]
                words = shlex.split(line.replace("[", " ").replace("]", " "))
                found.append((f"{path.relative_to(REPO_ROOT)}: {line}", words[1:]))
    return found


DOCUMENTED = documented_command_lines()


def test_the_docs_give_qa_eval_command_lines():
    assert len(DOCUMENTED) >= 15, DOCUMENTED  # the guard for the test below: it must have lines to check


@pytest.mark.parametrize("where, argv", DOCUMENTED, ids=[where for where, _ in DOCUMENTED])
def test_every_documented_qa_eval_command_line_parses(where, argv):
    args = build_parser(["eval"]).parse_args(argv)
    assert callable(args.func), where


def parse(*argv: str):
    return build_parser(["eval"]).parse_args(["eval", *argv])


def test_command_lines_in_use_keep_their_meaning():
    args = parse("squad", "--data", "f.json", "--reader", "r", "--out", "o", "--quiet", "--json")
    assert (args.evaluation, args.data, args.open, args.reader, args.out, args.quiet, args.json) == \
           ("squad", "f.json", None, "r", "o", True, True)
    args = parse("squad", "--open", "a.json", "b.json", "--reader", "r", "--cascade", "2", "--out", "o", "--quiet")
    assert (args.evaluation, args.data, args.open, args.cascade, args.out, args.quiet, args.json) == \
           ("squad", None, ["a.json", "b.json"], 2, "o", True, False)
    args = parse("--reader", "r")
    assert (args.evaluation, args.reader, args.mode, args.questions, args.calibrate) == \
           ("questions", "r", "hybrid", "eval/questions.jsonl", False)
    args = parse("fit-calibrator", "--train", "a", "b", "--test", "c", "d", "--reader", "r")
    assert (args.evaluation, args.train, args.test, args.reader) == ("fit-calibrator", ["a", "b"], ["c", "d"], "r")


def test_bare_qa_eval_is_qa_eval_questions():
    for options in ([], ["-k", "3", "--calibrate"], ["--mode", "bm25", "--json"]):
        assert vars(parse(*options)) == vars(parse("questions", *options))


# What each subcommand uses, written out from what each one runs (the library's arguments).
OWN_FLAGS = {
    "qa eval": set(),
    "qa eval questions": {"--questions", "--index", "--mode", "-k", "--reader", "--reader-runtime", "--threshold",
                          "--cascade", "--focus", "--calibrate", "--out", "--json", "--quiet"},
    "qa eval conversations": {"--conversations", "--index", "--mode", "-k", "--reader", "--reader-runtime",
                              "--threshold", "--cascade", "--focus", "--out", "--json", "--quiet"},
    "qa eval squad": {"--data", "--open", "--reader", "--reader-runtime", "--threshold", "--limit", "--out", "--json",
                      "--quiet", "-k", "--cascade", "--focus"},
    "qa eval beir": {"--data", "--mode", "--limit", "--out", "--json", "--quiet"},
    "qa eval fit-calibrator": {"--train", "--test", "--reader", "--target-precision", "-k", "--json"},
}


def test_each_subcommand_takes_only_its_own_options():
    counted = {name: c for name, c in count(build_parser(["eval"])).items() if name.startswith("qa eval")}
    assert {name: set(c["flags"]) for name, c in counted.items()} == OWN_FLAGS
    assert all(not c["positionals"] for name, c in counted.items())


def refusal(capsys, *argv: str) -> str:
    """The error line of ``qa eval ARGV``, which must fail with status 2 and one line."""
    code = exit_status(["eval", *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, line", [
    (["squad"], "qa eval squad: error: one of the arguments --data --open is required"),
    (["squad", "--data", "x", "--open", "y"], "qa eval squad: error: argument --open: not allowed with argument --data"),
    (["beir"], "qa eval beir: error: the following arguments are required: --data"),
    (["beir", "--data", "x", "--calibrate"], "qa eval beir: error: unrecognized arguments: --calibrate"),
    (["--data", "x"], "qa eval questions: error: unrecognized arguments: --data x"),
    (["--calibrate", "squad", "--data", "x"], "qa eval questions: error: unrecognized arguments: squad --data x"),
    (["conversations", "--open", "x"], "qa eval conversations: error: unrecognized arguments: --open x"),
    (["fit-calibrator"], "qa eval fit-calibrator: error: the following arguments are required: --train"),
    (["fit-calibrator", "--train", "x", "--quiet"], "qa eval fit-calibrator: error: unrecognized arguments: --quiet"),
    (["--threshold", "1.5"], "qa eval questions: error: argument --threshold: must be between 0 and 1, got 1.5"),
    (["--cascade", "-1"], "qa eval questions: error: argument --cascade: must be at least 0, got -1"),
    (["squad", "--data", "x", "--limit", "0"], "qa eval squad: error: argument --limit: must be at least 1, got 0"),
    (["sqaud", "--data", "x"], "qa eval: error: argument SUBCOMMAND: invalid choice: 'sqaud'"),
    (["squad", "--data", "x", "-k", "3", "--cascade", "1"], "qa: error: -k, --cascade go with --open"),
    (["fit-calibrator", "--train", "/no/such/run.jsonl"], "qa: error: No such file: /no/such/run.jsonl"),
])
def test_bad_command_lines_are_refused_in_one_line(capsys, argv, line):
    assert refusal(capsys, *argv).startswith(line)


def test_an_argparse_refusal_names_the_subcommands_help(capsys):
    assert refusal(capsys, "beir", "--data", "x", "--reader", "fast").endswith("(see qa eval beir --help)\n")


# ------------------------------------------------------------------ fit-calibrator through the library


def _features(span_score: float) -> dict:
    return {f: 0.0 for f in FEATURES} | {"span_score": span_score}


def _run(folder: Path, n: int, seed: int) -> Path:
    """An open-corpus run of ``n`` answerable questions: a right candidate scores 0.4-0.95, a wrong one
    0.05-0.6 (they overlap, so the fit is not separable), with the metrics.json that says how it read."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        right = i % 2 == 0
        score = rng.uniform(0.4, 0.95) if right else rng.uniform(0.05, 0.6)
        rows.append({"id": f"q{i}", "gold": ["1932"], "candidate": "1932" if right else "Paris",
                     "features": _features(score)})
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({"top_k": 4}), encoding="utf-8")
    return folder / "predictions.jsonl"


def test_fit_calibrator_fits_on_train_measures_on_test_and_saves_with_the_reader(tmp_path, capsys):
    train, test = _run(tmp_path / "runs" / "fit", 60, seed=1), _run(tmp_path / "runs" / "held", 20, seed=2)
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    packaged = (DEFAULT_READER_DIR / "calibration.json").read_bytes()

    assert main(["eval", "fit-calibrator", "--train", str(train), "--test", str(test), "--reader", str(reader),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((reader / "calibration.json").read_text())
    assert (DEFAULT_READER_DIR / "calibration.json").read_bytes() == packaged
    assert printed == saved["measured_on"]
    assert printed["train"]["questions"] == 60 and printed[f"test {test}"]["questions"] == 20
    assert printed["train"]["answerable"] == 60 and printed["train"]["unanswerable"] == 0
    # How the runs read, from the metrics.json beside them; what it was fitted on and measured on.
    assert (saved["top_k"], saved["trained_on"]) == (4, [str(train)])
    assert "reliability" in saved and all("held_out_precision" in band for band in saved["bands"])
    # Right candidates score higher: the only varying feature gets a positive weight, the largest.
    assert saved["weights"][0][0] == "span_score" and saved["weights"][0][1] > 0
    assert 0.0 <= saved["threshold"] <= 1.0

    assert main(["eval", "fit-calibrator", "--train", str(train), "--test", str(test), "--reader", str(reader)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(f"calibrator saved to {reader / 'calibration.json'}: threshold ")
    assert [line.split()[0] for line in table[-2:]] == ["train", "held"]  # a held-out run named by its folder


def test_fit_calibrator_refuses_rows_with_nothing_to_learn(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"id": f"q{i}", "gold": ["1932"], "candidate": "1932", "features": _features(0.9)} for i in range(5)]
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    line = refusal(capsys, "fit-calibrator", "--train", str(run / "predictions.jsonl"), "--reader", str(reader), "-k", "4")
    assert line.startswith("qa: error: Can't fit on the --train rows") and not (reader / "calibration.json").exists()
