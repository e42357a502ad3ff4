"""Training data preparation, and a smoke run of the training loop on a few examples."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from qa.errors import InvalidInput, MissingPath, UnsafeDestination
from qa.reading.reader import DEFAULT_READER_DIR
from qa.squad import SquadExample, dedupe, load_squad, split_by_article
from qa.training.config import TrainConfig
from qa.training.data import featurize
from qa.training.trainer import train_reader

torch = pytest.importorskip("torch")


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


def tiny_run(tmp_path):
    """Six copies of the tiny article (12 examples, 3 batches of 4) and settings that train in seconds."""
    data = squad_file(tmp_path / "train.json", [article(f"T{i}", CONTEXT, [dict(q, id=f"{q['id']}-{i}") for q in QAS]) for i in range(6)])
    cfg = TrainConfig(batch_size=4, holdout_fraction=0.0, checkpoint_minutes=0.0, max_length=64, stride=16)
    return data, cfg


@pytest.mark.integration
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    data, cfg = tiny_run(tmp_path)
    out = tmp_path / "reader"
    total = math.ceil(12 / 4)

    first = train_reader([data], out, replace(cfg, stop_at_step=1), show_progress=False)
    assert not first["finished"] and first["steps"] == 1
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 1 and len(state["losses"]) == 1
    assert not (out / "training_summary.json").exists() and not (out / "model.safetensors").exists()

    second = train_reader([data], out, cfg, show_progress=False)
    assert second["finished"] and second["resumed_from_step"] == 1 and second["steps"] == total
    assert json.loads((out / "training_summary.json").read_text())["steps"] == total
    for name in ("model.safetensors", "config.json", "tokenizer.json", "reader_config.json", "training_summary.json"):
        assert (out / name).is_file(), name
    assert oct((out / "model.safetensors").stat().st_mode)[-3:] == "644"
    assert not (out / "checkpoint").exists(), "a finished run leaves no checkpoint behind"

    from qa.reading.reader import Reader
    from qa.types import Passage

    result = Reader(out).read("When do trusts go live?", [Passage("p", "d", 0, len(CONTEXT), CONTEXT)])
    assert result.spans and all(CONTEXT[s.start : s.end] == s.text for s in result.spans)

    summary_before = (out / "training_summary.json").read_bytes()
    with pytest.raises(UnsafeDestination, match="already trained"):
        train_reader([data], out, cfg, show_progress=False)
    assert (out / "training_summary.json").read_bytes() == summary_before


@pytest.mark.integration
def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    data, cfg = tiny_run(tmp_path)
    out = tmp_path / "reader"
    train_reader([data], out, replace(cfg, stop_at_step=1), show_progress=False)
    checkpoint = (out / "checkpoint" / "state.pt").read_bytes()

    with pytest.raises(UnsafeDestination, match=r"seed 13 -> 14.*another --out"):
        train_reader([data], out, replace(cfg, seed=14), show_progress=False)
    with pytest.raises(UnsafeDestination, match="learning_rate"):
        train_reader([data], out, replace(cfg, learning_rate=3e-5), show_progress=False)
    with pytest.raises(UnsafeDestination, match="base_model"):
        train_reader([data], out, replace(cfg, base_model=str(DEFAULT_READER_DIR)), show_progress=False)
    edited = json.loads(data.read_text())
    edited["data"][0]["paragraphs"][0]["qas"][0]["question"] = "When do the trusts go live?"
    data.write_text(json.dumps(edited))
    with pytest.raises(UnsafeDestination, match="data files"):
        train_reader([data], out, cfg, show_progress=False)
    assert (out / "checkpoint" / "state.pt").read_bytes() == checkpoint, "a refused run leaves the checkpoint alone"


@pytest.mark.integration
def test_the_old_checkpoint_goes_only_after_the_new_one_is_in_place(tmp_path, monkeypatch):
    data, cfg = tiny_run(tmp_path)
    out = tmp_path / "reader"
    train_reader([data], out, replace(cfg, stop_at_step=1), show_progress=False)

    # Cut the next checkpoint swap short right before the new checkpoint is renamed into place.
    real_rename = Path.rename

    def crash_on_swap(self, target):
        if self.name == "checkpoint.tmp":
            raise KeyboardInterrupt("power cut")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_swap)
    with pytest.raises(KeyboardInterrupt):
        train_reader([data], out, cfg, show_progress=False)
    monkeypatch.undo()

    # The step-1 checkpoint is still there (moved aside, not deleted), and the run resumes from it.
    again = train_reader([data], out, cfg, show_progress=False)
    assert again["resumed_from_step"] == 1 and again["steps"] == math.ceil(12 / 4)


def test_a_foreign_checkpoint_folder_is_never_deleted(tmp_path):
    data, cfg = tiny_run(tmp_path)
    out = tmp_path / "reader"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeDestination, match="not a checkpoint"):
        train_reader([data], out, cfg, show_progress=False)
    assert (out / "checkpoint" / "notes.txt").read_text() == "mine"


def test_missing_data_is_a_user_error(tmp_path):
    with pytest.raises(MissingPath, match="--data"):
        train_reader([tmp_path / "nope.json"], tmp_path / "out", show_progress=False)
    with pytest.raises(InvalidInput, match="--data"):
        train_reader([], tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_training_features_are_the_readers_windows():
    # One featurization for both: what the model is trained on is what it is asked. A long question and a
    # context of several windows; an unanswerable example keeps every window, in order.
    from transformers import AutoTokenizer

    from qa.reading.reader import Reader

    reader = Reader()
    tokenizer = AutoTokenizer.from_pretrained(str(reader.path))
    question = "Which of the trusts named in the report " + "and the many other bodies " * 12 + "went live first?"
    context = " ".join(f"Trust {i} went live in April {1990 + i}." for i in range(120))
    cfg = TrainConfig(max_length=reader.max_length, stride=reader.stride, max_query_length=reader.max_query_length)
    feats = featurize(tokenizer, [SquadExample("x", "T", context, question, (), "f")], cfg, random.Random(0))
    windows = reader.windows(question, [context])
    assert len(windows) > 1
    assert [f["input_ids"] for f in feats] == [list(w.input_ids) for w in windows]
    assert [f["token_type_ids"] for f in feats] == [list(w.token_type_ids) for w in windows]
    # And the question really is cut to max_query_length tokens (counted by the tokenizer on its own).
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    assert len(question_ids) > reader.max_query_length
    assert feats[0]["input_ids"][1 : 1 + reader.max_query_length] == question_ids[: reader.max_query_length]
    assert feats[0]["input_ids"][1 + reader.max_query_length] == tokenizer.sep_token_id


def test_freezing_the_lower_layers_leaves_only_the_upper_ones_to_train():
    from transformers import BertConfig, BertForQuestionAnswering

    from qa.training.trainer import freeze_lower_layers

    model = BertForQuestionAnswering(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                num_attention_heads=2, intermediate_size=32))
    expected = sum(p.numel() for p in model.bert.embeddings.parameters()) + \
        sum(p.numel() for layer in model.bert.encoder.layer[:2] for p in layer.parameters())
    assert freeze_lower_layers(model, 0) == 0 and all(p.requires_grad for p in model.parameters())
    assert freeze_lower_layers(model, 2) == expected
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("bert.encoder.layer.2.", "qa_outputs.")) for n in trained)


@pytest.mark.integration
def test_excluded_questions_are_never_trained_on(tmp_path):
    data, cfg = tiny_run(tmp_path)
    excluded = squad_file(tmp_path / "fit.json", [article("T0", CONTEXT, [dict(q, id=f"{q['id']}-{i}") for q in QAS])
                                                  for i in range(3)])
    summary = train_reader([data], tmp_path / "reader", replace(cfg, exclude=[str(excluded)]), show_progress=False)
    assert summary["examples_available"] == 12 - 3 * len(QAS)  # copies 0-2 of the article's questions left out
    with pytest.raises(MissingPath, match="exclude"):
        train_reader([data], tmp_path / "other", replace(cfg, exclude=[str(tmp_path / "none.json")]),
                     show_progress=False)
