"""How the reader's span model runs: on torch (fp32, bf16 autocast, bf16 weights) or ONNX Runtime (fp32, int8).

Every runtime is a callable ``model(input_ids=, attention_mask=, token_type_ids=)`` taking int64 numpy
arrays and returning :class:`SpanLogits` (float32 numpy), so the reader is the same code over all.

The ONNX files are exported from the reader folder's weights on first use (a few seconds, needs torch
and transformers) and cached like the embedder's (:func:`qa.onnx_runtime.cached_export`,
under ``$QA_CACHE/onnx``, named after the folder's files: new weights export anew). Later runs load them
with ONNX Runtime and read the tokenizer with ``tokenizers`` alone: neither torch nor transformers is
imported, which is most of a cold ``qa ask``. ``onnx-int8`` is dynamic quantization: int8 weights per
output channel, activations scaled per run, so a window's logits depend slightly on what is batched
with it (the other runtimes give a window the same logits whatever its batch).

Example:
    >>> model = load_span_model("qa/models/fast-reader", "onnx")
    >>> model(input_ids=ids, attention_mask=mask, token_type_ids=types).start_logits.shape
    (5, 221)
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import InvalidInput
from qa.onnx_runtime import atomic_folder, cached_export, quantize_int8, session_options

if TYPE_CHECKING:  # numpy loads with a model, not when the CLI lists the runtimes
    import numpy as np

logger = logging.getLogger(__name__)

RUNTIMES = ("onnx", "onnx-int8", "torch-bf16", "torch-bf16-weights", "torch")
# The reader's default: fp32 answers, logits that don't depend on the batch, and no torch import for a cold
# `qa ask` (python -m benchmarks.speed runtimes compares the answers and times of every runtime).
DEFAULT_RUNTIME = "onnx"
# Runtimes that give a window the same logits whatever it is batched with (fp32). On the others, bf16 rounding
# and int8's per-batch activation scales move a window's logits with its batch, so the reader never mixes
# questions in their forward passes there.
BATCH_INVARIANT = ("onnx", "torch")
FP32_FILE = "reader.onnx"
INT8_FILE = "reader.int8.onnx"
INT8_REFUSED = "reader.int8.refused.txt"  # written in place of INT8_FILE when it fails its check
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_CHECK = (("When do the trusts go live?", "The primary care trusts go live in April 2000, a year late."),
                ("Who runs it?", "It is run by Mike Farrar, the chief executive of NHS North West."))


@dataclass(frozen=True)
class SpanLogits:
    """Start and end logits, one row per window and one value per token."""

    start_logits: np.ndarray
    end_logits: np.ndarray


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES`.

    Raises:
        InvalidInput: any other value.
    """
    if runtime not in RUNTIMES:
        raise InvalidInput(f"Unknown reader runtime {runtime!r}: use one of {', '.join(RUNTIMES)}.")
    return runtime


class TorchSpanModel:
    """The reader on torch: fp32 weights (``torch``), under bf16 autocast (``torch-bf16``), or with the
    weights themselves in bf16 (``torch-bf16-weights``)."""

    def __init__(self, path: str | Path, runtime: str = "torch-bf16"):
        import torch
        from transformers import AutoModelForQuestionAnswering

        logger.info("loading reader from %s (%s)", path, runtime)
        # Weights ship as fp16; transformers 5 keeps the stored dtype, and fp16 is very slow on CPUs.
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype="float32").float().eval()
        self.model = model.to(torch.bfloat16) if runtime == "torch-bf16-weights" else model
        self.autocast = runtime == "torch-bf16"
        self.takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> SpanLogits:
        import torch

        inputs = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
        if token_type_ids is not None and self.takes_token_types:
            inputs["token_type_ids"] = torch.from_numpy(token_type_ids)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(**inputs)
        return SpanLogits(out.start_logits.float().numpy(), out.end_logits.float().numpy())


class OnnxSpanModel:
    """The reader's ONNX export on ONNX Runtime (CPU), with ``threads`` per run (default: one per core)."""

    def __init__(self, file: str | Path, threads: int | None = None):
        import onnxruntime as ort

        logger.info("loading reader %s (ONNX)", file)
        self.session = ort.InferenceSession(str(file), session_options(threads), providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> SpanLogits:
        import numpy as np

        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": np.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        start, end = self.session.run(None, {n: given[n] for n in self.names})
        return SpanLogits(start, end)


def exported_reader(path: Path, quantize: bool) -> Path:
    """The cached ONNX file (int8 or fp32) of the reader in ``path``, exported on first use.

    Raises:
        RuntimeError: the int8 file was asked for and does not reproduce the model on this CPU.
    """
    fp32 = cached_export(path, FP32_FILE, _export)
    if not quantize:
        return fp32
    if not (fp32.parent / INT8_FILE).is_file():
        raise RuntimeError(f"The reader's int8 ONNX export does not reproduce the model on this CPU "
                           f"({(fp32.parent / INT8_REFUSED).read_text(encoding='utf-8').strip()}); "
                           "use --reader-runtime onnx or torch-bf16.")
    return fp32.parent / INT8_FILE


def _export(path: Path, folder: Path) -> None:
    """Export the reader in ``path`` to fp32 and int8 ONNX files, published as ``folder`` once checked."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForQuestionAnswering.from_pretrained(path, dtype="float32", attn_implementation="eager")
    model = model.float().eval()
    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
    names = [n for n in INPUT_NAMES if takes_types or n != "token_type_ids"]

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            out = self.inner(**dict(zip(names, inputs)))
            return out.start_logits, out.end_logits

    import numpy as np

    questions, contexts = zip(*EXPORT_CHECK)
    sample = tokenizer(list(questions), list(contexts), padding=True, return_tensors="pt")
    with atomic_folder(folder, FP32_FILE) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            reference = model(**{n: sample[n] for n in names})
            torch.onnx.export(Logits(model), tuple(sample[n] for n in names), str(tmp / FP32_FILE),
                              input_names=names, output_names=["start_logits", "end_logits"], opset_version=17,
                              dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["start_logits", "end_logits"]})
        quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE)
        inputs = {n: sample[n].numpy().astype(np.int64) for n in names}
        _check_export(tmp, inputs, reference.start_logits.numpy(), reference.end_logits.numpy(), sample["attention_mask"].numpy())


def _check_export(folder: Path, inputs: dict, start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> None:
    """The exports must reproduce the torch model: fp32 logits to 1e-3; int8 the same best start and end
    token of every sample (its logits move, so only what they choose is compared). An int8 file that doesn't
    (its integer kernels differ from CPU to CPU, and a barely trained model has near-ties) is left out, with a
    note saying why, and only the int8 runtime refuses to run; an fp32 file that doesn't fails the export."""
    import numpy as np

    real = mask.astype(bool)
    out = OnnxSpanModel(folder / FP32_FILE)(**inputs)
    if not all(np.abs(got - want)[real].max() < 1e-3 for got, want in ((out.start_logits, start), (out.end_logits, end))):
        raise RuntimeError(f"The reader's ONNX export {FP32_FILE} does not reproduce the model; "
                           "use a torch runtime (--reader-runtime torch-bf16).")
    out = OnnxSpanModel(folder / INT8_FILE)(**inputs)
    masked = lambda a: np.where(real, a, -np.inf)  # noqa: E731
    moved = sum(int((masked(got).argmax(1) != masked(want).argmax(1)).sum())
                for got, want in ((out.start_logits, start), (out.end_logits, end)))
    if moved:
        (folder / INT8_FILE).unlink()
        (folder / INT8_REFUSED).write_text(f"{moved} of {2 * len(start)} best start or end tokens moved on the check "
                                           "sample\n", encoding="utf-8")
        logger.warning("the reader's int8 ONNX export is left out: it moves %d of the check sample's %d best "
                       "start or end tokens on this CPU", moved, 2 * len(start))


@functools.lru_cache(maxsize=4)
def load_span_model(path: str, runtime: str):
    """The span model of the reader in ``path`` on ``runtime``, loaded once per process.

    A cached ONNX export that ONNX Runtime can't load (cut short by a full disk or a killed process) is
    exported again, with a warning, as the embedder's.
    """
    check_runtime(runtime)
    if not runtime.startswith("onnx"):
        return TorchSpanModel(path, runtime)
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, \
        NoSuchFile

    file = exported_reader(Path(path), quantize=runtime == "onnx-int8")
    try:
        return OnnxSpanModel(file)
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile) as err:
        import shutil

        logger.warning("the cached ONNX export %s can't be loaded (%s); exporting it again", file,
                       str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        shutil.rmtree(file.parent)
        return OnnxSpanModel(exported_reader(Path(path), quantize=runtime == "onnx-int8"))


class JsonTokenizer:
    """What :class:`qa.reading.windows.WindowTokenizer` uses of a Hugging Face fast tokenizer, read from
    the folder's ``tokenizer.json`` with ``tokenizers`` alone (no transformers import).

    Args:
        folder: a model folder with ``tokenizer.json`` (and ``tokenizer_config.json`` naming the pad token).
    """

    is_fast = True

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.backend_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        pad = config.get("pad_token") or "[PAD]"
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
        pad_id = self.backend_tokenizer.token_to_id(pad)
        self.pad_token_id = 0 if pad_id is None else pad_id
        self.model_input_names = list(config.get("model_input_names") or INPUT_NAMES)

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``, without special tokens."""
        return self.backend_tokenizer.encode(text, add_special_tokens=False).tokens


def load_tokenizer(folder: str | Path):
    """The reader's tokenizer: :class:`JsonTokenizer` when the folder has a ``tokenizer.json``, else
    transformers' ``AutoTokenizer``."""
    if (Path(folder) / "tokenizer.json").is_file():
        return JsonTokenizer(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
