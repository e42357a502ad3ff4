"""ONNX Runtime plumbing the embedder and the reader share: the export cache, atomic export folders,
int8 quantization, session options and the cores a process may use.

A model folder is exported to ONNX once, on first use, and the files are cached under
``$QA_CACHE/onnx`` (default ``~/.cache/qa/onnx``) in a folder named after the model folder's files, so
new weights export anew. Nothing here knows what the model is: :mod:`qa.embedding.onnx_backend` and
:mod:`qa.reading.runtimes` pass their own export functions.

Example:
    >>> file = cached_export(Path("qa/models/fast-reader"), "reader.onnx", export)
    >>> session = onnxruntime.InferenceSession(str(file), session_options())
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where this package keeps what it derives from installed models: ``$QA_CACHE``, else ``~/.cache/qa``."""
    return Path(os.environ.get("QA_CACHE", Path.home() / ".cache" / "qa"))


def cache_root() -> Path:
    """Where the ONNX exports are cached: ``$QA_CACHE/onnx``."""
    return cache_dir() / "onnx"


def cache_key(model_dir: Path) -> str:
    """Names, sizes and times of the model's files: a re-installed or changed model exports anew."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    stamp = [(p.relative_to(model_dir).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    digest = hashlib.sha256(json.dumps([str(model_dir.resolve()), stamp]).encode()).hexdigest()[:16]
    return f"{model_dir.name}-{digest}"


def cached_export(model_dir: Path, file_name: str, export: Callable[[Path, Path], None]) -> Path:
    """``file_name`` in the export cache of ``model_dir``, made by ``export(model_dir, folder)`` on first use.

    The cache folder is named after the model folder's files (see :func:`cache_key`): a changed model
    exports anew. ``export`` writes the whole folder, atomically (see :func:`atomic_folder`); a folder
    already there is a finished export, which may hold a note in place of a file it refused.
    """
    folder = cache_root() / cache_key(model_dir)
    target = folder / file_name
    if not folder.is_dir():
        logger.info("exporting %s to ONNX (once; cached in %s)", model_dir, folder)
        export(model_dir, folder)
    return target


@contextlib.contextmanager
def atomic_folder(folder: Path, expected: str) -> Iterator[Path]:
    """A fresh temporary folder beside ``folder`` to write into, renamed to ``folder`` in one step when the
    block ends without an error (and removed otherwise), so a crash never leaves half an export. When
    another process published ``folder`` first, its copy is kept if it holds ``expected``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same export first
            if not (folder / expected).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of ``source`` into ``target``: int8 weights scaled per output channel,
    activations scaled per run."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)


def session_options(threads: int | None = None):
    """ONNX Runtime options for this package's sessions: no busy-waiting between runs (spinning threads
    would take the cores from the other model and from the other requests); ``threads`` per run
    (default: ONNX Runtime's, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
