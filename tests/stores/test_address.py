"""Store addresses: a folder stays the local store; milvus:PATH.db and http(s):// name Milvus."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.errors import InvalidInput
from qa.stores.address import parse_address


@pytest.mark.parametrize("text, kind, location, collection", [
    ("embeddings", "local", "embeddings", None),
    ("./some/folder", "local", "./some/folder", None),
    ("milvus:./qa.db", "milvus", "./qa.db", "qa"),
    ("milvus:/data/qa.db#papers", "milvus", "/data/qa.db", "papers"),
    ("http://127.0.0.1:19530", "milvus", "http://127.0.0.1:19530", "qa"),
    ("https://db.example.org:443/#team_docs", "milvus", "https://db.example.org:443", "team_docs"),
    ("HTTP://host:19530", "milvus", "HTTP://host:19530", "qa"),
])
def test_addresses_parse_to_their_store(text, kind, location, collection):
    parsed = parse_address(text)
    assert (parsed.kind, parsed.location, parsed.collection, str(parsed)) == (kind, location, collection, text)
    assert parsed.is_server == location.lower().startswith(("http://", "https://"))


def test_a_path_object_is_always_a_folder():
    assert parse_address(Path("milvus:odd-folder-name")).kind == "local"


@pytest.mark.parametrize("text, says", [
    ("milvus:", "names no file"), ("http://", "names no host"), ("milvus:./qa.db#1bad-name", "collection name"),
])
def test_malformed_addresses_say_how_to_write_them(text, says):
    with pytest.raises(InvalidInput, match=says):
        parse_address(text)


def test_cli_refuses_a_malformed_address_before_loading_anything(tmp_path, capsys):
    from qa.cli import main

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("text", encoding="utf-8")
    assert main(["index", "--docs", str(tmp_path / "docs"), "--out", "milvus:"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "milvus:PATH.db" in err
