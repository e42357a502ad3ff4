"""Indexing on a Dask cluster gives what the single-process build gives, resumes as it does, and fails
in one line.

The oracle is the single-process build of the same folder with the same fake encoder: the same
manifest (build time aside), passages, documents and vectors. The cluster is a ``LocalCluster`` this
module starts on 127.0.0.1 (scheduler, workers and their HTTP servers): in-process workers for most
tests, worker processes where a worker must die or see another environment. The gRPC store runs when
``QA_MILVUS_URL`` names a server (``make test`` starts one) or under CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from helpers.corpus import TINY_CORPUS, write_corpus  # noqa: E402
from helpers.fakes import FakeEncoder  # noqa: E402
from milvus_server import grpc_enabled  # noqa: E402
from qa.cli import main  # noqa: E402
from qa.cluster import build as cluster_build  # noqa: E402
from qa.cluster.build import build_on_cluster  # noqa: E402
from qa.cluster.connect import ClusterError  # noqa: E402
from qa.ingest.chunking import ChunkConfig, chunk_document  # noqa: E402
from qa.ingest.documents import load_document  # noqa: E402
from qa.stores.local import build as build_module  # noqa: E402
from qa.stores.address import build_store, open_store, read_store_manifest  # noqa: E402
from qa.stores.base import IndexNotFoundError, IndexWriteError  # noqa: E402

CHUNKS = ChunkConfig(chunk_size=100, chunk_overlap=20)
# The tiny corpus, one more document, and a file that is not a document (skipped by every build).
CORPUS = {**TINY_CORPUS, "notes/tides.txt": ("Tides\n\nThe Moon's gravity raises two bulges of water. Spring tides "
                                             "follow a new or full Moon.\n\nNeap tides come at the quarter Moons.\n"),
          "broken.txt": b"\x00\x01binary"}
VOLATILE = ("built_at", "scanned_ns", "package_version", "collection")


class LoggingEncoder(FakeEncoder):
    """The fake encoder, writing each passage it embeds to a file: the workers get copies of it, so
    what they embedded is read back from the file."""

    def __init__(self, log: Path):
        super().__init__()
        self.log = str(log)

    def encode_passages(self, texts, show_progress=False):
        with open(self.log, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(t) + "\n" for t in texts)
        return super().encode_passages(texts)

    def logged(self) -> list[str]:
        path = Path(self.log)
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


class FailingEncoder(FakeEncoder):
    """Fails on any passage holding ``word``: a task that raises."""

    def __init__(self, word: str):
        super().__init__()
        self.word = word

    def encode_passages(self, texts, show_progress=False):
        if any(self.word in t for t in texts):
            raise RuntimeError(f"refusing {self.word!r}")
        return super().encode_passages(texts)


class DyingEncoder(FakeEncoder):
    """Kills its worker process when it meets ``word``: every time, or once (a marker file remembers)."""

    def __init__(self, word: str, marker: Path | None = None):
        super().__init__()
        self.word, self.marker = word, None if marker is None else str(marker)

    def encode_passages(self, texts, show_progress=False):
        if any(self.word in t for t in texts) and (self.marker is None or not os.path.exists(self.marker)):
            if self.marker is not None:
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode_passages(texts)


@pytest.fixture(scope="module")
def client():
    """Two in-process workers of one thread each."""
    with LocalCluster(host="127.0.0.1", protocol="tcp", n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "docs", CORPUS)


def addresses(kind: str, tmp_path: Path, request) -> tuple[str, str]:
    """Two fresh addresses of one kind of store: the single-process build's and the cluster's."""
    if kind == "local":
        return str(tmp_path / "single"), str(tmp_path / "cluster")
    if kind == "milvus-lite":
        return f"milvus:{tmp_path / 'single.db'}", f"milvus:{tmp_path / 'cluster.db'}"
    url = request.getfixturevalue("milvus_url")
    return f"{url}#s_{uuid.uuid4().hex[:12]}", f"{url}#c_{uuid.uuid4().hex[:12]}"


def contents(address: str) -> tuple[dict, list, dict, dict]:
    """A store's manifest (less what changes with every build), passages, documents and vectors by passage id."""
    store = open_store(address, check_documents=False)
    manifest = {k: v for k, v in store.manifest.items() if k not in VOLATILE and k != "data"}
    passages = sorted(store.passages, key=lambda p: (p.doc_id, p.start))
    documents = {d: store.documents[d] for d in store.documents}
    encoder = FakeEncoder()
    # Vectors, read back the way a search sees them: each passage's own vector is its nearest.
    vectors = {}
    for p in passages:
        top = store.dense_search(encoder.embed([p.text])[0], k=1, doc_ids=[p.doc_id])
        vectors[p.id] = round(top[0][1], 5)
    return manifest, passages, documents, vectors


@pytest.mark.parametrize("kind", ["local", "milvus-lite", "milvus-grpc"])
def test_the_cluster_build_equals_the_single_process_build(kind, corpus, tmp_path, client, request):
    single, clustered = addresses(kind, tmp_path, request)
    expected = build_store(corpus, single, encoder=FakeEncoder(), chunk_config=CHUNKS)
    log = LoggingEncoder(tmp_path / "embedded.jsonl")
    stats = build_on_cluster(corpus, clustered, client, encoder=log, chunk_config=CHUNKS, batch_size=4)
    assert (stats.documents, stats.passages, stats.added) == (expected.documents, expected.passages, expected.added)
    # Every passage was embedded on the workers, once.
    assert sorted(log.logged()) == sorted(p.text for p in open_store(single, check_documents=False).passages)
    assert contents(clustered) == contents(single)
    assert read_store_manifest(clustered)["skipped"][0]["file"] == "broken.txt"


def test_local_vectors_and_files_are_those_of_the_single_process_build(corpus, tmp_path, client):
    build_store(corpus, tmp_path / "single", encoder=FakeEncoder(), chunk_config=CHUNKS)
    build_on_cluster(corpus, tmp_path / "cluster", client, encoder=FakeEncoder(), chunk_config=CHUNKS, batch_size=3)
    single, clustered = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("single", "cluster"))
    for name in ("passages.jsonl", "documents.jsonl"):
        assert (tmp_path / "cluster" / clustered["data"] / name).read_bytes() == \
               (tmp_path / "single" / single["data"] / name).read_bytes()
    a, b = (open_store(tmp_path / n, check_documents=False).dense for n in ("single", "cluster"))
    np.testing.assert_allclose(b.reconstruct_n(0, b.ntotal), a.reconstruct_n(0, a.ntotal), atol=1e-6)
    assert not (tmp_path / "cluster" / ".partial").exists()


def test_an_update_embeds_only_new_and_changed_documents(corpus, tmp_path, client):
    out = tmp_path / "cluster"
    build_on_cluster(corpus, out, client, encoder=FakeEncoder(), chunk_config=CHUNKS)
    (corpus / "weather.txt").write_text("Weather\n\nHail falls from tall storm clouds in summer.\n", encoding="utf-8")
    (corpus / "space/moon.txt").write_text("The Moon\n\nThe Moon has no air and no weather.\n", encoding="utf-8")
    (corpus / "kitchen/bread.txt").unlink()
    log = LoggingEncoder(tmp_path / "embedded.jsonl")
    stats = build_on_cluster(corpus, out, client, encoder=log, chunk_config=CHUNKS)
    fresh = [p.text for f, i in (("space/moon.txt", "space/moon"), ("weather.txt", "weather"))
             for p in chunk_document(load_document(corpus / f, i, corpus), CHUNKS)]
    assert sorted(log.logged()) == sorted(fresh)
    assert (stats.added, stats.changed, stats.removed) == (["space/moon"], ["weather"], ["kitchen/bread"])
    build_store(corpus, tmp_path / "single", encoder=FakeEncoder(), chunk_config=CHUNKS)
    assert contents(str(out)) == contents(str(tmp_path / "single"))
    again = build_on_cluster(corpus, out, client, encoder=log, chunk_config=CHUNKS)
    assert not again.written and again.embedded == 0


def test_a_failed_run_publishes_nothing_and_the_next_embeds_only_what_it_left_out(corpus, tmp_path, client):
    out = tmp_path / "cluster"
    # Documents go in id order: the last one (weather) fails after the others were sent back and saved.
    with pytest.raises(RuntimeError, match="refusing"):
        build_on_cluster(corpus, out, client, encoder=FailingEncoder("barometer"), chunk_config=CHUNKS, batch_size=1)
    with pytest.raises(IndexNotFoundError):
        open_store(out)
    assert list((out / ".partial").glob("batch-*.docs.json"))
    log = LoggingEncoder(tmp_path / "embedded.jsonl")
    stats = build_on_cluster(corpus, out, client, encoder=log, chunk_config=CHUNKS)
    weather = [p.text for p in chunk_document(load_document(corpus / "weather.txt", "weather", corpus), CHUNKS)]
    assert set(weather) <= set(log.logged())
    assert 0 < len(log.logged()) < stats.passages
    build_store(corpus, tmp_path / "single", encoder=FakeEncoder(), chunk_config=CHUNKS)
    assert contents(str(out)) == contents(str(tmp_path / "single"))


def _process_cluster(**kwargs):
    return LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1, processes=True,
                        dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0", **kwargs)


def test_a_killed_worker_has_its_task_run_again(corpus, tmp_path):
    with _process_cluster() as cluster, Client(cluster) as c:
        stats = build_on_cluster(corpus, tmp_path / "cluster", c, encoder=DyingEncoder("barometer", tmp_path / "died"),
                                 chunk_config=CHUNKS)
    assert (tmp_path / "died").exists()
    build_store(corpus, tmp_path / "single", encoder=FakeEncoder(), chunk_config=CHUNKS)
    assert stats.passages == open_store(tmp_path / "single").dense.ntotal
    assert contents(str(tmp_path / "cluster")) == contents(str(tmp_path / "single"))


def test_workers_that_keep_dying_stop_the_build_in_one_line_and_publish_nothing(corpus, tmp_path):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), _process_cluster() as cluster, \
            Client(cluster) as c:
        with pytest.raises(ClusterError, match="died running the same task") as failed:
            build_on_cluster(corpus, tmp_path / "cluster", c, encoder=DyingEncoder("barometer"), chunk_config=CHUNKS)
    assert "\n" not in str(failed.value) and "published nothing" in str(failed.value)
    with pytest.raises(IndexNotFoundError):
        open_store(tmp_path / "cluster")


def test_a_worker_that_cannot_read_a_file_names_itself_and_the_file(corpus, tmp_path, client, monkeypatch):
    # The client listed the file; the workers don't see it (as without a shared file system).
    monkeypatch.setattr(cluster_build, "after_plan", lambda jobs: (corpus / "weather.txt").unlink())
    with pytest.raises(ClusterError, match=r"worker \S+ cannot read \S+weather.txt") as failed:
        build_on_cluster(corpus, tmp_path / "cluster", client, encoder=FakeEncoder(), chunk_config=CHUNKS)
    assert "\n" not in str(failed.value)
    with pytest.raises(IndexNotFoundError):
        open_store(tmp_path / "cluster")


def test_a_store_that_refuses_writes_fails_in_one_line(corpus, tmp_path, client, monkeypatch):
    def full(out, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_module, "write_rows", full)
    with pytest.raises(IndexWriteError, match="Could not write the index at .*No space left on device"):
        build_on_cluster(corpus, tmp_path / "cluster", client, encoder=FakeEncoder(), chunk_config=CHUNKS)


@pytest.mark.skipif(not grpc_enabled(), reason="Milvus server tests: set QA_MILVUS_URL (make test does) or CI=true")
def test_a_milvus_server_refusing_the_workers_token_fails_in_one_line(corpus, tmp_path, monkeypatch):
    from milvus_server import MilvusServer

    server = MilvusServer(tmp_path / "milvus-data", token="root:right").start()
    try:
        monkeypatch.setenv("QA_MILVUS_TOKEN", "root:right")  # the client's token is right, the workers' is not
        with _process_cluster(env={"QA_MILVUS_TOKEN": "root:wrong"}) as cluster, Client(cluster) as c:
            # pymilvus reports a bad token either as such or as a refused connection to a server that answers
            # (which the message then blames on the token): both name the worker, the server and the token.
            with pytest.raises(ClusterError, match=rf"On worker tcp://127\.0\.0\.1:\d+: .*{server.url} "
                                                   r"(refused the token|answers but refused the connection.*token)"
                               ) as failed:
                build_on_cluster(corpus, f"{server.url}#refused", c, encoder=FakeEncoder(), chunk_config=CHUNKS)
        assert "\n" not in str(failed.value)
        with pytest.raises(IndexNotFoundError):
            open_store(f"{server.url}#refused")
    finally:
        server.stop()


def test_no_reachable_scheduler_is_one_line_and_status_2(corpus, tmp_path, capsys, monkeypatch):
    from milvus_server import free_port

    monkeypatch.setattr("qa.cluster.connect.CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["index", "--docs", str(corpus), "--out", str(tmp_path / "i"), "--cluster", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qa: error: Cannot reach the Dask scheduler at {address}") and err.count("\n") == 1
    assert main(["index", "--docs", str(corpus), "--out", str(tmp_path / "i"), "--cluster", "dask"]) == 2
    assert "names no cluster" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def test_without_cluster_the_build_imports_no_dask(corpus, tmp_path):
    probe = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from helpers.fakes import FakeEncoder\n"
        "from qa.cli import build_parser\n"
        "from qa.stores.address import build_store\n"
        "from qa.ingest.chunking import ChunkConfig\n"
        "build_parser(['index'])\n"
        f"build_store({str(corpus)!r}, {str(tmp_path / 'i')!r}, encoder=FakeEncoder(), chunk_config=ChunkConfig(100, 0))\n"
        f"build_store({str(corpus)!r}, 'milvus:{tmp_path / 'i.db'}', encoder=FakeEncoder(), chunk_config=ChunkConfig(100, 0))\n"
        "print([m for m in ('dask', 'distributed', 'qa.cluster') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_local_cluster_listens_on_127_0_0_1_only():
    import psutil

    from qa.cluster.connect import cluster_client

    with cluster_client("local", workers=1) as c:
        pids = {os.getpid(), *c.run(os.getpid).values()}
        listening = [conn.laddr for conn in psutil.net_connections(kind="inet")
                     if conn.status == psutil.CONN_LISTEN and conn.pid in pids]
        assert c.scheduler.address.startswith("tcp://127.0.0.1:")
    assert listening and all(loopback(addr.ip) for addr in listening), listening


def loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback
