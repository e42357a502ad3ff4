"""``qa serve`` / ``app.py`` before anything loads: the address, the arguments; and a stale index's rebuild."""

from __future__ import annotations

import socket

import pytest

from helpers.cli import exit_status
from qa.cli import main
from qa.stores.local.build import build_index  # the real one, imported before any test replaces it


class Loaded(Exception):
    """Raised by the stand-in QA.load: reaching it means a model would have loaded."""


@pytest.fixture
def no_loading(monkeypatch):
    import qa.answering.pipeline as pipeline

    def load(*args, **kwargs):
        raise Loaded("QA.load was called")

    monkeypatch.setattr(pipeline.QA, "load", staticmethod(load))


@pytest.fixture
def busy_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def test_a_port_in_use_is_refused_before_loading(capsys, no_loading, busy_port):
    code = main(["serve", "--port", str(busy_port)])
    err = capsys.readouterr().err
    assert code == 2 and f"{busy_port}" in err and "in use" in err and len(err.splitlines()) == 1


def test_app_py_refuses_a_port_in_use_too(capsys, no_loading, busy_port):

    assert main(["--port", str(busy_port)], command="serve", prog="app.py") == 2
    assert capsys.readouterr().err.startswith(f"app.py: error: Port {busy_port}")


def test_an_unresolvable_host_is_refused_before_loading(capsys, no_loading):
    code = main(["serve", "--host", "no-such-host.invalid", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-host.invalid" in err and "--host" in err


@pytest.mark.parametrize("argv,words", [
    (["--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
    (["--threshold", "2"], "argument --threshold: must be between 0 and 1, got 2"),
    (["--cache-size", "-1"], "argument --cache-size: must be at least 0, got -1"),
    (["--cache-mb", "-0.5"], "argument --cache-mb: must be 0 or more, got -0.5"),
    (["--max-upload-mb", "0"], "argument --max-upload-mb: must be more than 0, got 0"),
    (["--busy", "-1"], "argument --busy: must be at least 0, got -1"),
    (["--port", "70000"], "argument --port: must be between 0 and 65535, got 70000"),
    (["--port", "http"], "argument --port: invalid port number value: 'http'"),
    (["--reader", "/no/such/reader"], "No reader '/no/such/reader'"),
])
def test_bad_arguments_are_refused_in_one_line_before_loading(capsys, no_loading, argv, words):
    assert exit_status(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.splitlines()) == 1


class Rebuilt(Exception):
    """Raised by the stand-in build_index once it has recorded its arguments."""


@pytest.fixture
def captured_build(monkeypatch):
    import qa.stores.local.build as local_build

    calls: list[dict] = []

    def build_index(docs_dir, out_dir="embeddings", **kwargs):
        calls.append({"docs_dir": docs_dir, "out_dir": out_dir, **kwargs})
        raise Rebuilt()

    monkeypatch.setattr(local_build, "build_index", build_index)
    return calls


def test_a_stale_index_is_rebuilt_with_its_own_settings(tiny_corpus, tmp_path, fake_encoder, captured_build):
    """Built with model 'fake-bow' on torch at 400/50 characters; a changed document makes it stale."""
    from qa.cli.serve import load_qa
    from qa.ingest.chunking import ChunkConfig
    from qa.stores.local.folder import read_manifest

    index = tmp_path / "index"
    build_index(tiny_corpus, index, encoder=fake_encoder, chunk_config=ChunkConfig(400, 50))  # the real one
    manifest = read_manifest(index)
    assert (manifest["model"], manifest["backend"], manifest["chunking"]) == (
        "fake-bow", "torch", {"chunk_size": 400, "chunk_overlap": 50})
    (tiny_corpus / "weather.txt").write_text("Weather notes\n\nIt rained all week.\n", encoding="utf-8")

    with pytest.raises(Rebuilt):
        load_qa(tiny_corpus, index)
    (call,) = captured_build
    assert call["model"] == "fake-bow" and call["backend"] == "torch"
    assert call["chunk_config"] == ChunkConfig(400, 50)
    assert str(call["out_dir"]) == str(index) and str(call["docs_dir"]) == str(tiny_corpus)


def test_a_missing_index_is_built_with_the_defaults(tiny_corpus, tmp_path, captured_build):
    from qa.cli.serve import load_qa

    with pytest.raises(Rebuilt):
        load_qa(tiny_corpus, tmp_path / "none")
    (call,) = captured_build
    assert call.get("model") is None and call.get("chunk_config") is None
