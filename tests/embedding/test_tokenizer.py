"""The ONNX encoder's tokenizer (``tokenizers`` alone, no transformers import) gives the model exactly
what the transformers tokenizer gave it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.embedding.models import resolve_model
from qa.embedding.onnx_backend import PaddedTokenizer

TEXTS = [
    "When do primary care trusts go live?",
    "PCTs",
    "Primary care groups were introduced in April 1999, replacing fundholding; " * 40,  # cut at max_length
    "£75bn a year — “curly quotes” and ünïcödé, 東京, emoji 🙂",
    "",
    "   spaces   and\ttabs\nand newlines  ",
]


@pytest.mark.parametrize("max_length", [256, 16])
def test_padded_tokenizer_matches_the_transformers_tokenizer(max_length):
    from transformers import AutoTokenizer

    model_dir = resolve_model(None)
    expected = AutoTokenizer.from_pretrained(model_dir)(TEXTS, padding=True, truncation=True,
                                                       max_length=max_length, return_tensors="np")
    got = PaddedTokenizer(model_dir, max_length)(TEXTS)
    assert set(got) == {"input_ids", "token_type_ids", "attention_mask"}
    for name, value in got.items():
        assert value.dtype == np.int64
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_padded_tokenizer_is_shared_safely_between_threads():
    from concurrent.futures import ThreadPoolExecutor

    tokenizer = PaddedTokenizer(resolve_model(None), 64)
    alone = {t: tokenizer([t])["input_ids"].tolist() for t in TEXTS}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: tokenizer([t])["input_ids"].tolist(), TEXTS * 50))
    assert got == [alone[t] for t in TEXTS * 50]


def test_the_onnx_encoder_does_not_import_transformers_to_encode(tmp_path):
    # An export already cached (the integration tests make one); encoding a query needs no transformers.
    code = (
        "import sys\n"
        "from qa.embedding.onnx_backend import OnnxEncoder, exported_model\n"
        "enc = OnnxEncoder()\n"
        "enc.encode_queries(['When do primary care trusts go live?'])\n"
        "print('transformers' in sys.modules, 'torch' in sys.modules)\n"
    )
    from qa.embedding.onnx_backend import INT8_FILE
    from qa.onnx_runtime import cache_key, cache_root

    if not (cache_root() / cache_key(Path(resolve_model(None))) / INT8_FILE).is_file():
        pytest.skip("no cached ONNX export of the default embedder yet (the integration tests make one)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"], out.stdout


@pytest.mark.integration
def test_concurrent_fp32_queries_share_runs_and_keep_their_vectors():
    from concurrent.futures import ThreadPoolExecutor
    import threading

    from qa.embedding.onnx_backend import OnnxEncoder

    encoder = OnnxEncoder(quantize=False)
    alone = {t: encoder.encode_queries([t])[0] for t in TEXTS}  # the oracle: one query per run
    session, tokenizer, names = encoder._load()
    runs = []

    class Counting:
        def run(self, outputs, feeds):
            runs.append(len(next(iter(feeds.values()))))
            return session.run(outputs, feeds)

    encoder._loaded = (Counting(), tokenizer, names)
    jobs = TEXTS * 8
    barrier = threading.Barrier(len(jobs))

    def ask(text):
        barrier.wait()
        return encoder.encode_queries([text])[0]

    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(ask, jobs))
    for text, vector in zip(jobs, got):
        np.testing.assert_allclose(vector, alone[text], atol=1e-6)
    assert len(runs) < len(jobs), runs


def test_int8_queries_are_never_batched_with_others():
    from qa.embedding.onnx_backend import OnnxEncoder

    assert OnnxEncoder(quantize=True).query_batches is None
