"""Shared fixtures: a fake keyword encoder and tiny corpora, so unit tests run in milliseconds.

Other test modules may ask for the fixtures by name or import the helpers
(``from conftest import FakeEncoder, minimal_pdf``: pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pytest

from qa.ingest.chunking import ChunkConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDS_DIR = REPO_ROOT / "seeds"

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEncoder:
    """A deterministic bag-of-words encoder: each lower-cased word is hashed (blake2b, stable across
    processes) into one of ``dimension`` buckets; the count vector is L2-normalised.

    Texts that share words get a positive inner product, texts that share none score 0, which makes
    dense results predictable. It records every text it encodes, so tests can check what a build
    re-embedded.

    Args:
        dimension: number of hash buckets (the embedding size).
        name: the model name written to the index manifest.
    """

    def __init__(self, dimension: int = 512, name: str = "fake-bow"):
        self.name = name
        self.dimension = dimension
        self.passages_encoded: list[str] = []
        self.queries_encoded: list[str] = []

    @property
    def passage_count(self) -> int:
        """How many passages went through :meth:`encode_passages` so far."""
        return len(self.passages_encoded)

    def reset(self) -> None:
        self.passages_encoded.clear()
        self.queries_encoded.clear()

    def bucket(self, word: str) -> int:
        digest = hashlib.blake2b(word.lower().encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "little") % (self.dimension - 1) + 1

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            if not words:
                out[row, 0] = 1.0  # bucket 0 is kept for texts without words, so every row is a unit vector
            for w in words:
                out[row, self.bucket(w)] += 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries_encoded.extend(texts)
        return self.embed(texts)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.passages_encoded.extend(texts)
        return self.embed(texts)


# A tiny corpus on unrelated topics, so each query has one obvious right document.
TINY_CORPUS: dict[str, str] = {
    "animals/cats.txt": (
        "Cats\n\n"
        "Domestic cats sleep for around fifteen hours a day. A cat purrs when it is content.\n\n"
        "Kittens open their eyes about ten days after birth. Whiskers help cats judge narrow gaps.\n"
    ),
    "space/rockets.md": (
        "# Rocket engines\n\n"
        "A rocket engine burns propellant to produce thrust. Liquid oxygen is a common oxidiser.\n\n"
        "The Saturn V rocket carried astronauts to the Moon in 1969. Its first stage used kerosene.\n"
    ),
    "kitchen/bread.txt": (
        "Baking bread\n\n"
        "Yeast ferments sugar and releases carbon dioxide, which makes the dough rise.\n\n"
        "Sourdough bread uses a starter of wild yeast and lactobacilli instead of baker's yeast.\n"
    ),
    "weather.txt": (
        "Weather notes\n\n"
        "A barometer measures air pressure. Falling pressure often signals an approaching storm.\n\n"
        "Cumulonimbus clouds bring thunder, lightning and heavy rain.\n"
    ),
}


def write_corpus(folder: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``{relative path: text or bytes}`` under ``folder`` (created) and return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return folder


def minimal_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (ASCII only), written by hand.

    pypdf's writer cannot lay out text, so the objects and the cross-reference table are built here.
    """
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


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
    """Folder holding :data:`TINY_CORPUS` (four documents, nested folders, .txt and .md)."""
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


def tracked_files(folder: Path) -> list[Path]:
    """The files under ``folder`` (of this repository) that git tracks, sorted: what the project ships,
    never what a user added, uploaded or left there. Outside a git checkout (a source archive), the
    folder's files that are not hidden."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--",
                                 folder.relative_to(REPO_ROOT).as_posix()], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        listed = b""
    files = sorted(REPO_ROOT / name for name in listed.decode("utf-8").split("\0") if name)
    return files or sorted(p for p in folder.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(folder).parts))


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
