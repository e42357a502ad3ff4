"""The command line with a Milvus Lite address: the same --out and --index as a folder."""

from __future__ import annotations

import json

import pytest

from qa.cli import main


@pytest.mark.integration
def test_index_then_search_and_ask_a_milvus_lite_store(tiny_corpus, tmp_path, capsys):
    address = f"milvus:{tmp_path / 'qa.db'}#tiny"
    assert main(["index", "--docs", str(tiny_corpus), "--out", address, "--quiet"]) == 0
    assert "Indexed 4 documents" in capsys.readouterr().out
    assert main(["search", "How long do cats sleep?", "--index", address, "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["doc_id"] == "animals/cats" and "fifteen hours" in rows[0]["text"]
    assert main(["ask", "What did the Saturn V carry to the Moon?", "--index", address, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["passages"][0]["doc_id"] == "space/rockets"
    assert main(["index", "--docs", str(tiny_corpus), "--out", address, "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
