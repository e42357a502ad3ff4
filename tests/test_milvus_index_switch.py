"""Switching a built collection's dense index from FLAT to HNSW waits for the dropped index to go.

Milvus Lite returns from ``drop_index`` before the engine has let go of the index on a large
collection (seen at 1M passages: "index already exists for field 'dense'; call drop_index first"
from the ``create_index`` that followed, after a 38-minute build). A stand-in client reproduces
that: the dropped index lingers for a few polls, and creating over it fails as Milvus does.
"""

from __future__ import annotations

import pytest

pymilvus = pytest.importorskip("pymilvus")

from qa.stores import milvus_build  # noqa: E402


class LingeringDrop:
    """A client whose dropped index is still listed, and still blocks a new one, for ``linger`` polls."""

    def __init__(self, linger: int):
        self.linger, self.calls, self.created = linger, [], None

    def release_collection(self, name):
        self.calls.append("release")

    def drop_index(self, name, index_name):
        self.calls.append("drop")

    def prepare_index_params(self):
        from pymilvus import MilvusClient

        return MilvusClient.prepare_index_params()

    def list_indexes(self, name, field_name=""):
        self.calls.append("list")
        if self.linger > 0:
            self.linger -= 1
            return ["dense"]
        return []

    def create_index(self, name, index, sync=True):
        self.calls.append("create")
        self.created = index

    def load_collection(self, name):
        self.calls.append("load")


def _writer(client):
    return milvus_build._Writer(client, "qa__v000001", True, {}, encoder=None, replace=False)


def test_the_hnsw_index_is_created_once_the_dropped_one_is_gone(monkeypatch):
    monkeypatch.setattr(milvus_build.time, "sleep", lambda s: None)
    client = LingeringDrop(linger=3)
    _writer(client).index(approximate=True)
    assert client.calls == ["release", "drop", "list", "list", "list", "list", "create", "load"]
    (params,) = list(client.created)
    assert params.to_dict()["index_type"] == "HNSW" and params.to_dict()["M"] == milvus_build.HNSW_M


def test_a_dropped_index_that_never_goes_is_a_clear_error(monkeypatch):
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(milvus_build.time, "sleep", lambda s: None)
    monkeypatch.setattr(milvus_build.time, "monotonic", lambda: next(clock))
    client = LingeringDrop(linger=10_000)
    with pytest.raises(pymilvus.MilvusException, match="still there .* run the build again"):
        _writer(client).index(approximate=True)
    assert "create" not in client.calls


def test_a_flat_collection_keeps_its_index():
    client = LingeringDrop(linger=0)
    _writer(client).index(approximate=False)
    assert client.calls == []
