"""``qa serve`` / ``app.py`` before anything loads: the address, the arguments; and a stale index's rebuild."""

from __future__ import annotations

import socket

import pytest

from qa.cli import main


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
    from qa.cli.serve import main as app_main

    assert app_main(["--port", str(busy_port)]) == 2
    assert capsys.readouterr().err.startswith(f"app.py: error: Port {busy_port}")


def test_an_unresolvable_host_is_refused_before_loading(capsys, no_loading):
    code = main(["serve", "--host", "no-such-host.invalid", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-host.invalid" in err and "--host" in err


@pytest.mark.parametrize("argv,words", [
    (["--concurrency", "0"], "--concurrency"),
    (["--threshold", "2"], "--threshold"),
    (["--cache-size", "-1"], "--cache-size"),
    (["--port", "70000"], "--port"),
    (["--reader", "/no/such/reader"], "--reader"),
])
def test_bad_arguments_are_refused_before_loading(capsys, no_loading, argv, words):
    assert main(["serve", *argv]) == 2
    assert words in capsys.readouterr().err
