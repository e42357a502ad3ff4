"""Training data preparation, and a smoke run of the training loop on a few examples."""

from __future__ import annotations

import json
import math
import random

import pytest

from qa.training.trainer import SquadExample, TrainConfig, dedupe, featurize, load_squad, split_by_article, train_reader


def squad_file(path, articles):
    path.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    return path


def article(title, context, qas):
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


CONTEXT = "Primary care trusts, which go live in April 2000, have been heralded as a UK hybrid."
QAS = [
    {"id": "q1", "question": "When do trusts go live?", "answers": [{"text": "April 2000", "answer_start": 38}]},
    {"id": "q2", "question": "Who funds the moon?", "answers": [], "is_impossible": True},
]


@pytest.fixture
def tokenizer():
    from transformers import AutoTokenizer

    from qa.training.trainer import default_base_model

    return AutoTokenizer.from_pretrained(default_base_model())


def test_load_squad_reads_answers_and_impossible(tmp_path):
    examples = load_squad(squad_file(tmp_path / "s.json", [article("A", CONTEXT, QAS)]))
    assert [e.id for e in examples] == ["q1", "q2"]
    assert examples[0].answers == (("April 2000", 38),)
    assert CONTEXT[38:48] == "April 2000"
    assert examples[1].is_impossible and not examples[0].is_impossible


def test_load_squad_rejects_other_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="SQuAD"):
        load_squad(bad)
    with pytest.raises(FileNotFoundError):
        load_squad(tmp_path / "missing.json")


def test_split_is_by_article_never_by_question():
    examples = [SquadExample(f"{t}-{i}", t, "c", "q?", (), "f") for t in "ABCDEFGHIJKLMNOP" for i in range(5)]
    train, val = split_by_article(examples, 0.3)
    assert train and val
    assert not {e.title for e in train} & {e.title for e in val}
    assert split_by_article(examples, 0.3) == (train, val)  # deterministic


def test_dedupe_keeps_first_of_each_id():
    a = SquadExample("x", "T", "c", "q1?", (), "v1")
    b = SquadExample("x", "T", "c", "q1?", (), "v2")
    assert dedupe([a, b]) == [a]


def test_features_label_the_answer_tokens(tokenizer, tmp_path):
    examples = load_squad(squad_file(tmp_path / "s.json", [article("A", CONTEXT, QAS)]))
    feats = featurize(tokenizer, examples, TrainConfig(), random.Random(0))
    answered = [f for f in feats if f["start"] > 0]
    assert len(answered) == 1
    tokens = answered[0]["input_ids"][answered[0]["start"] : answered[0]["end"] + 1]
    assert tokenizer.decode(tokens) == "april 2000"  # the uncased tokenizer lower-cases
    impossible = [f for f in feats if f["start"] == 0]
    assert impossible and all(f["end"] == 0 for f in impossible)


def test_long_context_becomes_windows_with_one_positive(tokenizer):
    filler = " ".join(f"Line {i} is filler text about nothing." for i in range(200))
    context = filler + " The answer is Birmingham. " + filler
    start = context.index("Birmingham")
    ex = SquadExample("l", "L", context, "Where?", (("Birmingham", start),), "f")
    cfg = TrainConfig(max_length=128, stride=32, negative_windows_per_question=1)
    feats = featurize(tokenizer, [ex], cfg, random.Random(0))
    positives = [f for f in feats if f["start"] > 0]
    assert len(positives) >= 1 and len(feats) == len(positives) + 1  # one negative window kept
    f = positives[0]
    assert tokenizer.decode(f["input_ids"][f["start"] : f["end"] + 1]) == "birmingham"
    assert all(len(x["input_ids"]) <= 128 for x in feats)


@pytest.mark.integration
def test_training_loop_smoke_and_resume(tmp_path):
    data = squad_file(tmp_path / "train.json", [article(f"T{i}", CONTEXT, [dict(q, id=f"{q['id']}-{i}") for q in QAS]) for i in range(6)])
    cfg = TrainConfig(batch_size=4, holdout_fraction=0.0, checkpoint_minutes=0.0, max_length=64, stride=16)
    out = tmp_path / "reader"
    summary = train_reader([data], out, cfg, show_progress=False)
    assert summary["steps"] == math.ceil(12 / 4)
    assert math.isfinite(summary["final_loss_mean_last_100"])
    for name in ("model.safetensors", "config.json", "tokenizer.json", "reader_config.json", "training_summary.json"):
        assert (out / name).is_file(), name
    assert oct((out / "model.safetensors").stat().st_mode)[-3:] == "644"
    assert (out / "checkpoint" / "state.pt").is_file()
    # A second call resumes from the checkpoint: nothing is left to train.
    again = train_reader([data], out, cfg, show_progress=False)
    assert again["steps"] == summary["steps"]

    from qa.reading.reader import Reader
    from qa.types import Passage

    result = Reader(out).read("When do trusts go live?", [Passage("p", "d", 0, len(CONTEXT), CONTEXT)])
    assert all(CONTEXT[s.start : s.end] == s.text for s in result.spans)
