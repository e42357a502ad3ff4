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


@pytest.fixture(params=["milvus-lite", "milvus-server"])
def milvus_address(request, tmp_path):
    """A fresh Milvus address: Milvus Lite embedded, or a collection of the server QA_MILVUS_URL names."""
    import os
    import uuid

    if request.param == "milvus-lite":
        return f"milvus:{tmp_path / 'qa.db'}"
    if not os.environ.get("QA_MILVUS_URL"):
        pytest.skip("no Milvus server: set QA_MILVUS_URL (tests/milvus_server.py does)")
    return f"{os.environ['QA_MILVUS_URL'].rstrip('/')}#t_{uuid.uuid4().hex[:12]}"


def test_qa_index_refuses_to_replace_the_milvus_index_of_another_folder(make_corpus, milvus_address, monkeypatch,
                                                                        capsys):
    import qa.stores.milvus.build as milvus_build
    from helpers.fakes import FakeEncoder

    from qa.stores.address import build_store, read_store_manifest

    a = make_corpus(name="a")
    b = make_corpus({"ferry.txt": "The ferry leaves at nine."}, name="b")
    build_store(a, milvus_address, encoder=FakeEncoder())

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the destination was checked")

    monkeypatch.setattr(milvus_build, "load_encoder", no_model)
    assert main(["index", "--docs", str(b), "--out", milvus_address, "--quiet"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "--replace" in said and str(a.resolve()) in said
    assert read_store_manifest(milvus_address)["docs_dir"] == str(a.resolve())
    monkeypatch.setattr(milvus_build, "load_encoder", lambda *args, **kwargs: FakeEncoder())
    assert main(["index", "--docs", str(b), "--out", milvus_address, "--quiet", "--replace"]) == 0
    assert read_store_manifest(milvus_address)["docs_dir"] == str(b.resolve())
