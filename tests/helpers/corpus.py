"""The repository's paths, tiny corpora, and documents written by hand (PDF) or by python-docx."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = REPO_ROOT / "seeds"

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

# One more document, for uploads into the tiny corpus.
FERRY = "Ferry timetable\n\nThe ferry to Mull leaves Oban at nine every morning.\n"


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


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included: relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def make_docx(paragraphs, title: str | None = None, table=None, heading: str | None = None) -> bytes:
    """A .docx written with python-docx (the parser under test reads it back)."""
    import docx

    document = docx.Document()
    if title is not None:
        document.core_properties.title = title
    if heading is not None:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


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
