"""Switching a built collection's dense index from FLAT to HNSW, as Milvus Lite behaves at 1M passages.

Seen there (``python -m benchmarks.scale run --passages 1000000``): ``create_index`` took 424 s to answer, pymilvus sent it again, and the
second answer was "index already exists for field 'dense'; call drop_index first" although the first
had made the HNSW index; a dropped index may still be listed for a while. A stand-in client
reproduces each of these.
"""

from __future__ import annotations

import pytest

pymilvus = pytest.importorskip("pymilvus")

from qa.stores.milvus import build as milvus_build  # noqa: E402


class StandIn:
    """A client whose dense index is ``kind``; a dropped index lingers for ``linger`` listings; with
    ``retried``, creating the index makes it and then answers "already exists", as pymilvus's retry did."""

    def __init__(self, kind: str = "FLAT", linger: int = 0, retried: bool = False):
        self.kind, self.linger, self.retried, self.calls = kind, linger, retried, []

    def describe_index(self, name, index_name):
        if self.kind is None:
            raise pymilvus.MilvusException(message="index not found")
        return {"index_type": self.kind, "field_name": "dense"}

    def release_collection(self, name):
        self.calls.append("release")

    def drop_index(self, name, index_name):
        self.calls.append("drop")
        self.kind = None

    def prepare_index_params(self):
        from pymilvus import MilvusClient

        return MilvusClient.prepare_index_params()

    def list_indexes(self, name, field_name=""):
        self.calls.append("list")
        if self.linger > 0:
            self.linger -= 1
            return ["dense"]
        return ["dense"] if self.kind else []

    def create_index(self, name, index, sync=True):
        self.calls.append("create")
        (params,) = list(index)
        self.kind = params.to_dict()["index_type"]
        assert params.to_dict()["M"] == milvus_build.HNSW_M
        if self.retried:
            raise pymilvus.MilvusException(message="index already exists for field 'dense'; call drop_index first")

    def load_collection(self, name):
        self.calls.append("load")


def _switch(client, approximate=True):
    milvus_build._Writer(client, "qa__v000001", True, {}, encoder=None, replace=False).index(approximate)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(milvus_build.time, "sleep", lambda s: None)


def test_the_hnsw_index_is_created_once_the_dropped_one_is_gone():
    client = StandIn(linger=3)
    _switch(client)
    assert client.calls == ["release", "drop", "list", "list", "list", "list", "create", "load"]
    assert client.kind == "HNSW"


def test_already_exists_from_a_retry_of_our_own_request_is_success():
    client = StandIn(retried=True)
    _switch(client)
    assert client.calls == ["release", "drop", "list", "create", "load"] and client.kind == "HNSW"


def test_an_index_an_interrupted_run_made_hnsw_is_kept():
    client = StandIn(kind="HNSW")
    _switch(client)
    assert client.calls == ["load"]


def test_already_exists_with_the_old_index_still_there_is_an_error_after_waiting(monkeypatch):
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(milvus_build.time, "monotonic", lambda: next(clock))
    client = StandIn(linger=10_000)
    with pytest.raises(pymilvus.MilvusException, match="still there .* run the build again"):
        _switch(client)
    assert "create" not in client.calls


def test_a_flat_collection_keeps_its_index():
    client = StandIn()
    _switch(client, approximate=False)
    assert client.calls == [] and client.kind == "FLAT"
