"""Fixtures every folder of tests may ask for by name: tiny corpora and indexes built with the fake keyword
encoder (unit tests run in milliseconds), the bundled corpus with the real models, the app served on
127.0.0.1, and a Milvus server.

Plain helpers (the fake encoder, corpora, hand-made files) are modules of ``tests/helpers`` that tests import.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

import pytest
from helpers.corpus import REPO_ROOT, SEEDS_DIR, TINY_CORPUS, tracked_files, write_corpus
from helpers.fakes import FakeEncoder
from milvus_server import MilvusServer, grpc_enabled

from qa.ingest.chunking import ChunkConfig


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_corpus({"a.txt": "...", ...}, name="docs")`` writes files under tmp_path/name."""

    def make(files: Mapping[str, str | bytes] | None = None, name: str = "docs") -> Path:
        return write_corpus(tmp_path / name, TINY_CORPUS if files is None else files)

    return make


@pytest.fixture
def tiny_corpus(make_corpus) -> Path:
    """Folder holding :data:`helpers.corpus.TINY_CORPUS` (four documents, nested folders, .txt and .md)."""
    return make_corpus()


@pytest.fixture
def small_chunks() -> ChunkConfig:
    """Small passages, so the tiny corpus yields several passages per document."""
    return ChunkConfig(chunk_size=100, chunk_overlap=0)


@pytest.fixture
def tiny_index(tiny_corpus: Path, tmp_path: Path, fake_encoder: FakeEncoder, small_chunks: ChunkConfig) -> Path:
    """The tiny corpus indexed with the fake encoder, in tmp_path/index."""
    from qa.stores.local.build import build_index

    out = tmp_path / "index"
    build_index(tiny_corpus, out, encoder=fake_encoder, chunk_config=small_chunks)
    return out


@pytest.fixture
def tiny_retriever(tiny_index: Path, fake_encoder: FakeEncoder):
    from qa.retrieval.retriever import Retriever

    return Retriever.load(tiny_index, encoder=fake_encoder)


@pytest.fixture(scope="session")
def bundled_copy(tmp_path_factory) -> Path:
    """A folder holding ``seeds/`` and ``embeddings/`` as the repository ships them (tracked files only,
    side by side, so the index still finds its documents at ``../seeds``): what the tests read of the
    bundled corpus, whatever else is in the working tree."""
    root = tmp_path_factory.mktemp("bundled")
    for name in ("seeds", "embeddings"):
        for path in tracked_files(REPO_ROOT / name):
            if not path.is_file():
                pytest.fail(f"{path} is tracked by git but missing: restore it with git checkout -- {path}")
            target = root / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return root


@pytest.fixture(scope="session")
def seeds_dir(bundled_copy: Path) -> Path:
    """The bundled corpus, its tracked files only (a copy: change it freely)."""
    if not SEEDS_DIR.is_dir():
        pytest.skip("bundled corpus seeds/ not found")
    return bundled_copy / "seeds"


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, bundled_copy: Path) -> Path:
    """The index of the bundled corpus: the shipped embeddings/ when it is current (documents, default
    model, backend and chunking), else one fresh build shared by every test that needs it; both over
    the tracked files of seeds/ only."""
    from dataclasses import asdict

    from qa import StaleIndexError, build_index
    from qa.embedding.encoder import DEFAULT_BACKEND
    from qa.embedding.models import DEFAULT_MODEL
    from qa.stores.base import IndexNotFoundError
    from qa.stores.local.index import Index

    index = bundled_copy / "embeddings"
    try:
        manifest = Index.load(index, model=DEFAULT_MODEL, backend=DEFAULT_BACKEND).manifest
        if manifest["chunking"] == asdict(ChunkConfig()):
            return index
    except (IndexNotFoundError, StaleIndexError):
        pass
    out = tmp_path_factory.mktemp("seeds-index")
    build_index(bundled_copy / "seeds", out)
    return out


@pytest.fixture(scope="session")
def bundled_qa(bundled_index):
    """The real pipeline over the bundled corpus."""
    from qa import QA

    return QA.load(bundled_index)


@pytest.fixture(scope="module")
def serve_app(tmp_path_factory) -> Callable[..., tuple[str, Path]]:
    """Factory: ``serve_app(qa, **build_app_options)`` serves the app for ``qa`` (the pipeline or a stand-in)
    on a free 127.0.0.1 port, in this process, and returns (its URL, its feedback file); every app it
    started (``serve_app.apps``) is closed after the test module."""
    from benchmarks.loadtest import free_port
    from qa.app import ui
    from qa.app.feedback import FeedbackLog

    apps = []

    def serve(qa, feedback: Path | None = None, **options) -> tuple[str, Path]:
        feedback = feedback or tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
        apps.append(ui.build_app(qa, FeedbackLog(feedback), **options))
        return ui.launch(apps[-1], port=free_port(), block=False), feedback

    serve.apps = apps  # the apps it started, newest last (a test may look inside one)
    yield serve
    for app in apps:
        app.close()


@pytest.fixture(scope="module")
def server(serve_app, bundled_qa) -> tuple[str, Path]:
    """The app on the bundled corpus with the real models, as ``make run`` serves it: (URL, feedback file)."""
    from qa.app import ui

    return serve_app(bundled_qa, examples=ui.BUNDLED_EXAMPLES, corpus_name="seeds")


@pytest.fixture(scope="session")
def milvus_url(tmp_path_factory):
    """A Milvus server's URL: ``QA_MILVUS_URL``, or one started here under CI; skips the test otherwise."""
    if os.environ.get("QA_MILVUS_URL"):
        yield os.environ["QA_MILVUS_URL"].rstrip("/")
        return
    if not grpc_enabled():
        pytest.skip("no Milvus server: set QA_MILVUS_URL (make test starts one) or CI=true")
    server = MilvusServer(tmp_path_factory.mktemp("milvus-data")).start()
    try:
        yield server.url
    finally:
        server.stop()
