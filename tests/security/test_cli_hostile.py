"""The command line against hostile names, closed pipes and bad store addresses: one line, exit 2 (or a
quiet 141 when the reader of the output goes away), never an internal error or raw control characters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from helpers.corpus import REPO_ROOT
from helpers.fakes import FakeEncoder, FirstWordReader

from qa.cli import main
from qa.cli.common import PIPE_CLOSED

ESCAPES = "Alarm \x1b]0;pwned\x07 notes \u202e"  # a terminal title change and a right-to-left override


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("qa: error: ") and "internal error" not in err, err
    return err


# Control characters in names and text are printed escaped ---------------------------------------------

@pytest.fixture
def hostile_index(make_corpus, tmp_path, monkeypatch, small_chunks):
    """An index of a file whose name and first line hold terminal escapes; qa search and qa ask load it
    with the fake encoder and a reader that answers a passage's first word."""
    from qa.answering.pipeline import QA
    from qa.retrieval.retriever import Retriever
    from qa.stores.local.build import build_index

    docs = make_corpus({f"red\x1b[31m{chr(0x202e)}txt.exe.txt": f"{ESCAPES}\n\n\x1b[2J ferry leaves at nine.\n"})
    index = tmp_path / "index"
    build_index(docs, index, encoder=FakeEncoder(), chunk_config=small_chunks)
    load = Retriever.load.__func__
    monkeypatch.setattr(Retriever, "load", classmethod(lambda cls, path, **kw: load(cls, path, encoder=FakeEncoder())))
    monkeypatch.setattr(QA, "load", classmethod(
        lambda cls, path, **kw: QA(Retriever.load(path), FirstWordReader(tmp_path), threshold=0.0)))
    return index


@pytest.mark.parametrize("command", ["search", "ask"])
def test_control_characters_in_names_and_text_are_printed_escaped(hostile_index, capsys, command):
    assert main([command, "When does the ferry leave?", "--index", str(hostile_index)]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\u202e"), repr(out)
    assert "\\x1b" in out and "\\u202e" in out


# A closed pipe ends the command quietly -------------------------------------------------------------------

PRINTER = textwrap.dedent("""
    import sys
    from qa.cli.common import run_command
    def run(args):
        for n in range(100_000):
            print(f"line {n}: " + "x" * 60)
        return 0
    sys.exit(run_command(run, None, "qa"))
""")


def test_a_closed_pipe_ends_the_output_quietly():
    """`qa ... | head -1`: the reader goes away while the command still writes."""
    process = subprocess.Popen([sys.executable, "-c", PRINTER], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == PIPE_CLOSED and err == b"", err.decode()


@pytest.mark.integration
@pytest.mark.parametrize("command", [["search", "primary care trusts", "-k", "20"],
                                     ["ask", "When do primary care trusts go live?"]])
def test_qa_search_and_ask_piped_into_head_end_quietly(bundled_index, command):
    """The probe itself, with the real models: the pipe is closed before anything is written."""
    process = subprocess.Popen([sys.executable, "-m", "qa.cli", *command, "--index", str(bundled_index)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=600)
    assert process.returncode == PIPE_CLOSED and b"rror" not in err, err.decode()


# Bad Milvus addresses, and a .db another process holds ---------------------------------------------------

@pytest.mark.parametrize("address, says", [
    ("milvus:./store", "does not end in .db"),
    ("http://127.0.0.1:99999", "no valid port"),
    ("http://127.0.0.1:0#qa", "no valid port"),
    ("milvus:", "names no file"),
])
def test_a_bad_milvus_address_is_one_line(capsys, address, says, tmp_path):
    for argv in (["search", "When?", "--index", address], ["index", "--docs", str(tmp_path), "--out", address]):
        assert main(argv) == 2
        assert says in _one_error_line(capsys.readouterr().err)


HOLDER = textwrap.dedent("""
    import sys, time
    from pymilvus import MilvusClient
    client = MilvusClient(uri=sys.argv[1])
    print("ready", flush=True)
    time.sleep(600)
""")


def test_a_milvus_lite_file_held_by_another_process_is_one_line(tmp_path, capsys):
    """The probe: a second `qa index` on the same .db ended in "internal error: Open local milvus failed"."""
    db = tmp_path / "held.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "a.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
        for argv in (["search", "When?", "--index", f"milvus:{db}"], ["index", "--docs", str(docs), "--out", f"milvus:{db}"]):
            started = time.monotonic()
            assert main(argv) == 2
            assert "is open in another process" in _one_error_line(capsys.readouterr().err)
            assert time.monotonic() - started < 120
    finally:
        holder.kill()
        holder.wait(30)


# A place the index can't be written -----------------------------------------------------------------------

def test_an_unreadable_out_folder_is_one_line(tiny_corpus, tmp_path, monkeypatch, capsys):
    """Tests run as root, which ignores permission bits: the file system's refusal is simulated."""
    import errno
    from pathlib import Path

    out = tmp_path / "locked"
    out.mkdir()
    real_iterdir = Path.iterdir

    def refuse(self):
        if self == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refuse)
    assert main(["index", "--docs", str(tiny_corpus), "--out", str(out)]) == 2
    assert "Permission denied" in _one_error_line(capsys.readouterr().err)


def test_a_permission_error_anywhere_is_one_line_not_an_internal_error(capsys, monkeypatch, tmp_path):
    import errno

    import qa.stores.address as address

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/qa/index/manifest.json")

    monkeypatch.setattr(address, "read_store_manifest", refuse)
    docs = tmp_path / "docs"
    docs.mkdir()
    assert main(["index", "--docs", str(docs), "--out", str(tmp_path / "index")]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "permission denied: /srv/qa/index/manifest.json" in err
