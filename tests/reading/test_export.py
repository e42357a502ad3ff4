"""The reader's ONNX exports: each runtime needs only its own file to reproduce the model.

The int8 file's integer kernels differ from CPU to CPU (AVX2, AVX-512 VNNI, AMX), and a barely
trained model has near-ties between tokens, so the int8 export can fail its check where the fp32
one passes: then the fp32 runtime must still run, and only the int8 runtime refuses, saying why.
"""

from __future__ import annotations

import numpy as np
import pytest

import qa.reading.runtimes as runtimes
from qa.reading.reader import DEFAULT_READER_DIR, Reader
from qa.types import Passage

CONTEXT = "Primary care trusts, which go live in April 2000, have been heralded as a UK hybrid."


def _moving_int8(monkeypatch):
    """ONNX Runtime as it is, except that the int8 file's best start token moves by one."""
    real = runtimes.OnnxSpanModel

    class Moving(real):
        def __init__(self, file, threads=None):
            super().__init__(file, threads)
            self.int8 = str(file).endswith(runtimes.INT8_FILE)

        def __call__(self, *args, **kwargs):
            out = real.__call__(self, *args, **kwargs)
            if self.int8:
                return runtimes.SpanLogits(np.roll(out.start_logits, 1, axis=1), out.end_logits)
            return out

    monkeypatch.setattr(runtimes, "OnnxSpanModel", Moving)


def test_an_int8_export_that_moves_answers_is_left_out_and_fp32_still_runs(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    runtimes.load_span_model.cache_clear()
    _moving_int8(monkeypatch)
    try:
        fp32 = runtimes.exported_reader(DEFAULT_READER_DIR, quantize=False)
        assert fp32.is_file() and not (fp32.parent / runtimes.INT8_FILE).exists()
        assert "moved on the check sample" in (fp32.parent / runtimes.INT8_REFUSED).read_text()
        assert "int8 ONNX export is left out" in caplog.text
        monkeypatch.undo()
        monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
        answer = Reader(runtime="onnx").read("When do trusts go live?", [Passage("p", "d", 0, len(CONTEXT), CONTEXT)])
        assert answer.spans[0].text == "April 2000"
        with pytest.raises(RuntimeError, match="int8 ONNX export does not reproduce the model on this CPU.*moved"):
            Reader(runtime="onnx-int8").read("When do trusts go live?", [Passage("p", "d", 0, len(CONTEXT), CONTEXT)])
    finally:
        runtimes.load_span_model.cache_clear()


def test_an_int8_export_that_reproduces_the_model_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    runtimes.load_span_model.cache_clear()
    try:
        int8 = runtimes.exported_reader(DEFAULT_READER_DIR, quantize=True)
        assert int8.name == runtimes.INT8_FILE and not (int8.parent / runtimes.INT8_REFUSED).exists()
    finally:
        runtimes.load_span_model.cache_clear()
