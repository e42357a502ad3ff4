"""How ``qa`` and ``app.py`` report failures: a user's error in one line (exit 2), a fault as internal (exit 1)."""

from __future__ import annotations

import pytest

from qa.cli import main
from qa.errors import InvalidInput, MissingPath
from qa.stores.base import IndexNotFoundError, StaleIndexError


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("A\n\nSome text about trusts.\n", encoding="utf-8")
    return folder


def _index_raising(monkeypatch, err: Exception) -> None:
    import qa.stores.local.build as local_build

    def build_index(*args, **kwargs):
        raise err

    monkeypatch.setattr(local_build, "build_index", build_index)


@pytest.mark.parametrize("err", [
    InvalidInput("Bad setting: pass another."), MissingPath("No file at x: pass one."),
    IndexNotFoundError("No index at y: build one."), StaleIndexError("Out of date: rebuild."),
])
def test_a_user_error_is_one_line_and_exit_2(capsys, monkeypatch, docs, tmp_path, err):
    _index_raising(monkeypatch, err)
    code = main(["index", "--docs", str(docs), "--out", str(tmp_path / "idx")])
    assert code == 2
    assert capsys.readouterr().err == f"qa: error: {err}\n"


@pytest.mark.parametrize("err", [ValueError("dimension mismatch 384 != 768"), FileNotFoundError("tokenizer.json"),
                                 KeyError("passages"), RuntimeError("CUDA out of memory")])
def test_any_other_exception_is_an_internal_error(capsys, monkeypatch, docs, tmp_path, err):
    _index_raising(monkeypatch, err)
    code = main(["index", "--docs", str(docs), "--out", str(tmp_path / "idx")])
    err_text = capsys.readouterr().err
    assert code == 1
    assert err_text == (f"qa: internal error: {type(err).__name__}: {err} (run with -v for the traceback)\n")


def test_verbose_shows_the_traceback(capsys, monkeypatch, docs, tmp_path):
    _index_raising(monkeypatch, ValueError("dimension mismatch"))
    code = main(["-v", "index", "--docs", str(docs), "--out", str(tmp_path / "idx")])
    err_text = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err_text and 'raise err' in err_text
    assert err_text.rstrip().endswith("qa: internal error: ValueError: dimension mismatch")


def test_a_multiline_message_prints_on_one_line(capsys, monkeypatch, docs, tmp_path):
    _index_raising(monkeypatch, InvalidInput("first line\nsecond line"))
    assert main(["index", "--docs", str(docs), "--out", str(tmp_path / "idx")]) == 2
    assert capsys.readouterr().err == "qa: error: first line second line\n"


def _serve_raising(monkeypatch, err: Exception) -> None:
    import qa.cli.serve as serve

    def load_qa(*args, **kwargs):
        raise err

    monkeypatch.setattr(serve, "load_qa", load_qa)


def test_app_py_reports_like_qa(capsys, monkeypatch, tmp_path):
    from benchmarks.loadtest import free_port

    monkeypatch.chdir(tmp_path)  # no bundled corpus here: the app makes no demo copy of it

    _serve_raising(monkeypatch, StaleIndexError("The index is out of date: rebuild it."))
    assert main(["--port", str(free_port())], command="serve", prog="app.py") == 2
    assert capsys.readouterr().err == "app.py: error: The index is out of date: rebuild it.\n"

    _serve_raising(monkeypatch, RuntimeError("reader weights are corrupt"))
    assert main(["--port", str(free_port())], command="serve", prog="app.py") == 1
    assert capsys.readouterr().err == ("app.py: internal error: RuntimeError: reader weights are corrupt "
                                       "(run with -v for the traceback)\n")
