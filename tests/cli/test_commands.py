"""The `qa` command: JSON contracts and one-line errors for what a user can get wrong."""

from __future__ import annotations

import json

import pytest

from helpers.cli import exit_status
from qa.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_docs_folder_is_one_clear_line(capsys, tmp_path):
    code, _, err = run(capsys, "index", "--docs", str(tmp_path / "nope"), "--out", str(tmp_path / "idx"))
    assert code == 2
    assert "Document folder not found" in err and "Traceback" not in err
    assert not (tmp_path / "idx").exists()


def test_empty_docs_folder_says_so(capsys, tmp_path):
    (tmp_path / "docs").mkdir()
    code, _, err = run(capsys, "index", "--docs", str(tmp_path / "docs"), "--out", str(tmp_path / "idx"))
    assert code == 2 and "No loadable documents" in err


def test_missing_index_says_how_to_build(capsys, tmp_path):
    code, _, err = run(capsys, "search", "anything", "--index", str(tmp_path / "none"))
    assert code == 2 and "qa index" in err


def test_bad_chunk_settings_are_rejected(capsys, tmp_path):
    code, _, err = run(capsys, "index", "--docs", "seeds", "--out", str(tmp_path / "i"), "--chunk-overlap", "900")
    assert code == 2 and "chunk_overlap" in err


def test_unknown_backend_is_an_argparse_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["index", "--docs", "seeds", "--out", str(tmp_path / "i"), "--backend", "cuda"])
    assert exit_.value.code == 2 and "invalid choice: 'cuda'" in capsys.readouterr().err


@pytest.mark.integration
def test_search_json(capsys):
    code, out, _ = run(capsys, "search", "When do primary care trusts go live?", "-k", "3", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"rank", "score", "doc_id", "title", "start", "end", "text"}
    assert any("April 2000" in r["text"] for r in rows)


@pytest.mark.integration
def test_search_rejects_empty_query_and_bad_k(capsys):
    code, _, err = run(capsys, "search", "  ")
    assert code == 2 and "empty" in err
    assert exit_status(["search", "trusts", "-k", "0"]) == 2
    assert "argument -k: must be at least 1" in capsys.readouterr().err


@pytest.mark.integration
def test_ask_json_answers_april_2000(capsys):
    code, out, _ = run(capsys, "ask", "When do primary care trusts go live?", "--json")
    assert code == 0
    obj = json.loads(out)
    assert obj["answer"] == "April 2000" and obj["abstained"] is False
    c = obj["citations"][0]
    assert c["doc_id"] == "000_514f065cc880a116" and "April 2000" in c["quote"]
    text = open("seeds/000_514f065cc880a116.txt", encoding="utf-8").read()
    assert text[c["start"] : c["end"]] == c["quote"]


@pytest.mark.integration
def test_ask_refuses_off_corpus_with_passages(capsys):
    code, out, _ = run(capsys, "ask", "Who won the 2018 FIFA World Cup?", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["answer"] is None and obj["abstained"] is True
    assert len(obj["passages"]) == 5
    code, out, _ = run(capsys, "ask", "Who won the 2018 FIFA World Cup?")
    assert "The documents don't say" in out
