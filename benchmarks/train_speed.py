"""How fast the reader trains on this CPU: windows per second for each way of running the training step.

Prints one line per variant (the same batches, the same model, in one run, so compare the ratios):

- ``fp32``: no autocast;
- ``bf16-autocast``: fp32 weights, bf16 autocast (the trainer's default);
- ``bf16-autocast-b32``: the same with batches of 32;
- ``compile+bf16-autocast``: ``torch.compile`` of the model (inductor, dynamic shapes) under autocast;
- ``bf16-weights``: the model itself in bf16 (AdamW on bf16 parameters; on AMX every matmul is bf16);
- ``bf16-weights+fp32-master``: the same with fp32 master weights for AdamW (``--bf16-weights`` in
  ``qa train-reader``; :mod:`qa.training.precision`).

Batches are real training windows (SQuAD-format data, the trainer's own featurization and length-grouped
batches), so padding and lengths are those of a training run.

Example:
    python -m benchmarks.train_speed ../shared/data/squad/squad-v1.1-dev-40articles.json --steps 12
"""

from __future__ import annotations

import argparse
import random
import time

from qa.training.config import TrainConfig
from qa.squad import load_squad
from qa.training.data import collate, featurize, length_grouped_batches
from qa.training.precision import MasterWeights
from qa.training.trainer import backward_and_step, default_base_model, freeze_lower_layers


def _step_fn(model, optimizer, autocast: bool, master=None):
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    trained = master.params if master else list(model.parameters())

    def step(ids, types, mask, starts, ends):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        loss = (loss_fn(out.start_logits.float(), starts) + loss_fn(out.end_logits.float(), ends)) / 2
        backward_and_step(loss, optimizer, trained, master)
        return loss.item()

    return step


def measure(name: str, features, batches, pad_id: int, base: str, autocast: bool, dtype: str = "fp32",
            compile_model: bool = False, warmup: int = 2, freeze: int = 0) -> float:
    """Windows per second over ``batches`` after ``warmup`` untimed steps."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(base).float().train()
    freeze_lower_layers(model, freeze)
    master = None
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    elif dtype == "bf16+master":
        master = MasterWeights(model)
    optimizer = torch.optim.AdamW(master.params if master else model.parameters(), lr=5e-5)
    runner = torch.compile(model, dynamic=True) if compile_model else model
    step = _step_fn(runner, optimizer, autocast, master)
    for b in batches[:warmup]:
        step(*collate(features, b, pad_id))
    t0, windows = time.perf_counter(), 0
    for b in batches[warmup:]:
        step(*collate(features, b, pad_id))
        windows += len(b)
    rate = windows / (time.perf_counter() - t0)
    print(f"{name:24s} {rate:6.2f} windows/s  ({windows} windows, {len(batches) - warmup} steps)", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data", help="a SQuAD-format file to take windows from")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant (batch 16)")
    parser.add_argument("--variants", default="fp32,bf16-autocast,bf16-autocast-b32,bf16-weights,"
                        "bf16-weights+fp32-master,compile+bf16-autocast")
    parser.add_argument("--freeze", type=int, default=0, help="also measure fp32 with the embeddings and this "
                        "many of the lowest layers frozen (qa train-reader --freeze-layers)")
    parser.add_argument("--base-model", default=None, help="encoder to train (default: packaged all-MiniLM-L6-v2; "
                        "a name such as all-mpnet-base-v2 or a folder)")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    import torch

    from qa.embedding.models import resolve_model

    base = resolve_model(args.base_model) if args.base_model else default_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    rng = random.Random(0)
    examples = load_squad(args.data)
    rng.shuffle(examples)
    cfg = TrainConfig()
    features = featurize(tokenizer, examples[: 40 * (args.steps + 2)], cfg, rng)
    b16 = length_grouped_batches(features, 16, random.Random(1))[: args.steps + 2]
    b32 = [b16[i] + b16[i + 1] for i in range(0, len(b16) - 1, 2)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"mean window {sum(len(features[k]['input_ids']) for b in b16 for k in b) / sum(map(len, b16)):.0f} tokens")
    pad = tokenizer.pad_token_id
    plans = {
        "fp32": dict(autocast=False),
        "bf16-autocast": dict(autocast=True),
        "bf16-autocast-b32": dict(autocast=True, batches=b32, warmup=1),
        "compile+bf16-autocast": dict(autocast=True, compile_model=True, warmup=3),
        "bf16-weights": dict(autocast=False, dtype="bf16"),
        "bf16-weights+fp32-master": dict(autocast=False, dtype="bf16+master"),
    }
    variants = args.variants.split(",")
    if args.freeze:
        plans[f"fp32-freeze{args.freeze}"] = dict(autocast=False, freeze=args.freeze)
        variants.append(f"fp32-freeze{args.freeze}")
    for name in variants:
        plan = dict(plans[name])
        batches = plan.pop("batches", b16)
        try:
            measure(name, features, batches, pad, base, **plan)
        except Exception as err:  # a variant this machine can't run is reported, not fatal
            print(f"{name:24s} failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")


if __name__ == "__main__":
    main()
