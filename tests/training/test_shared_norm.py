"""Multi-passage training: shared-normalisation loss, group features, answer labelling, entity swaps."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest

from qa.training.config import TrainConfig
from qa.training.passages import PassageGroup, answer_spans, read_groups, write_groups
from qa.text import content_words
from qa.training.synthetic import might_answer, sentence_words, swap_entity
from qa.types import Passage

torch = pytest.importorskip("torch")


def test_shared_loss_matches_a_softmax_worked_by_hand():
    from qa.training.shared_norm import shared_loss

    # Group 0 has two windows of 3 positions; position 2 of window 1 is masked out (question token).
    # Allowed logits: window 0: [0, 1, 2], window 1: [1, 0]. Gold: window 0 position 2, window 1 position 0.
    # -log P(gold) = log(e^0 + e^1 + e^2 + e^1 + e^0) - log(e^2 + e^1)
    #             = log(1 + 2.71828 + 7.38906 + 2.71828 + 1) - log(7.38906 + 2.71828) = 2.68301 - 2.31326
    # Group 1 (one window [3, 0, 0], gold [CLS] = position 0): log(e^3 + 2) - 3 = 0.24131.
    logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 50.0], [3.0, 0.0, 0.0]])
    allowed = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    gold = torch.tensor([[0, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=torch.bool)
    group = torch.tensor([0, 0, 1])
    expected = ((math.log(1 + math.e + math.e**2 + math.e + 1) - math.log(math.e**2 + math.e))
                + (math.log(math.e**3 + 2) - 3)) / 2
    assert shared_loss(logits, allowed, gold, group, 2).item() == pytest.approx(expected, rel=1e-5)


def test_shared_loss_pushes_mass_to_the_right_passage():
    """One gradient step on the loss raises the gold passage's span above a distractor's."""
    from qa.training.shared_norm import shared_loss

    logits = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 2.5]], requires_grad=True)
    allowed = torch.ones(2, 3, dtype=torch.bool)
    gold = torch.tensor([[0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    shared_loss(logits, allowed, gold, torch.tensor([0, 0]), 1).backward()
    after = logits.detach() - logits.grad * 10
    assert after[0, 1] > after[1, 2], "the distractor's span must lose to the gold one"


def test_group_features_mark_gold_tokens_in_every_passage_that_holds_them(tokenizer):
    from qa.training.shared_norm import collate_groups, featurize_groups

    p1 = "The trusts went live in April 2000 across England."
    p2 = "Nothing about dates here, only about funding."
    p3 = "In April 2000 the first wave began."
    g = PassageGroup("q", "When did trusts go live?", "answerable", "t",
                     (p1, p2, p3), (((24, 34),), (), ((3, 13),)))
    none = PassageGroup("n", "Who funds the moon?", "unanswerable", "t", (p1, p2), ((), ()))
    feats = featurize_groups(tokenizer, [g, none], TrainConfig())
    assert len(feats) == 2 and [len(f["windows"]) for f in feats] == [3, 2]
    for w, text in zip(feats[0]["windows"], ("april 2000", None, "april 2000")):
        if text is None:
            assert w["starts"] == [] and w["ends"] == []
        else:
            assert tokenizer.decode(w["input_ids"][w["starts"][0]: w["ends"][0] + 1]) == text
    assert all(w["starts"] == [0] and w["ends"] == [0] for w in feats[1]["windows"])

    batch = collate_groups(feats, [0, 1], tokenizer.pad_token_id)
    assert batch.group.tolist() == [0, 0, 0, 1, 1] and batch.groups == 2
    assert bool((batch.gold_start & ~batch.allowed).any()) is False
    question_tokens = len(tokenizer("When did trusts go live?")["input_ids"]) - 1  # [CLS] question [SEP]
    assert not batch.allowed[0, 1:question_tokens].any(), "question tokens never compete"
    assert not batch.allowed[1, batch.attention_mask[1] == 0].any(), "padding never competes"


def test_an_answerable_group_without_a_whole_answer_is_left_out(tokenizer):
    from qa.training.shared_norm import featurize_groups

    g = PassageGroup("q", "When?", "answerable", "t", ("In April 2000 it began.",), (((3, 40),),))
    assert featurize_groups(tokenizer, [g], TrainConfig()) == []


def test_group_batches_keep_groups_whole_and_cover_each_once():
    from qa.training.shared_norm import group_batches

    feats = [{"windows": [{"input_ids": [0] * (10 + k)}] * (1 + k % 4)} for k in range(50)]
    batches = group_batches(feats, 8, random.Random(0))
    assert sorted(k for b in batches for k in b) == list(range(50))
    for b in batches:
        assert len(b) == 1 or sum(len(feats[k]["windows"]) for k in b) <= 8


def test_answer_spans_find_every_whole_word_occurrence():
    text = "Jay Z met Beyonce. Jay Zed is another. Later, Jay Z toured."
    p = Passage("p", "d", 100, 100 + len(text), text)
    # The labelled answer is the second "Jay Z" (document offsets 146-151); the first is found by text;
    # "Jay Zed" is not a whole-word match; "Z" (<= 2 characters) is never searched for.
    assert answer_spans(p, [(146, 151)], ["Jay Z", "Z"]) == ((0, 5), (46, 51))
    assert answer_spans(p, [(10, 15)], []) == ()


def test_groups_round_trip_through_json_lines(tmp_path):
    g = PassageGroup("q", "Q?", "swap", "s.json", ("a", "b"), (((0, 1),), ()))
    write_groups([g], tmp_path / "g.jsonl")
    assert read_groups(tmp_path / "g.jsonl") == [g]
    assert not read_groups(tmp_path / "g.jsonl")[0].is_impossible
    assert replace(g, answers=((), ())).is_impossible


def test_swap_entity_puts_in_another_entity_of_the_same_type():
    q = "When did Chopin leave Warsaw?"
    ents = [("Chopin", "PERSON", 9, 15), ("Warsaw", "GPE", 22, 28)]
    pool = {"PERSON": ["Chopin", "Liszt"], "GPE": ["Warsaw"], "DATE": ["1830"]}
    new, entity = swap_entity(q, ents, pool, random.Random(0))
    assert (new, entity) == ("When did Liszt leave Warsaw?", "Liszt")  # Warsaw has no other GPE to swap in
    assert swap_entity(q, ents, {"GPE": ["Warsaw"]}, random.Random(0)) is None


def test_a_swap_that_the_article_might_answer_is_recognised():
    sentences = sentence_words(["Liszt left Warsaw in 1831. Chopin left Warsaw in 1830."])
    # Other content words {leave, warsaw}: the first sentence holds Liszt and 1 of the 2, so it might answer.
    assert might_answer("When did Liszt leave Warsaw?", "Liszt", sentences) is True
    assert might_answer("When did Liszt leave Vienna?", "Liszt", sentences) is False  # 0 of {leave, vienna}
    assert might_answer("When did Mozart leave Warsaw?", "Mozart", sentences) is False  # no sentence names him
    assert content_words("When did the trusts go live?") == {"trusts", "go", "live"}


@pytest.mark.integration
@pytest.mark.parametrize("bf16_weights", [False, True])
def test_a_shared_normalisation_run_trains_and_saves_a_reader(tmp_path, bf16_weights):
    from qa.training.trainer import train_reader

    context = "Primary care trusts, which go live in April 2000, have been heralded as a UK hybrid."
    data = tmp_path / "train.json"
    data.write_text(json.dumps({"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": [{"id": "q", "question": "When?", "answers": [
            {"text": "April 2000", "answer_start": 38}]}]}]}]}), encoding="utf-8")
    distractor = "Trusts are funded by the Department of Health."
    groups = [PassageGroup(f"q{i}", "When do trusts go live?", "answerable", "t", (distractor, context),
                           ((), ((38, 48),))) for i in range(6)]
    groups += [PassageGroup(f"n{i}", "Who funds the moon?", "unanswerable", "t", (distractor, context), ((), ()))
               for i in range(2)]
    write_groups(groups, tmp_path / "groups.jsonl")
    cfg = TrainConfig(batch_size=4, holdout_fraction=0.0, checkpoint_minutes=0.0, max_length=64, stride=16,
                      groups=str(tmp_path / "groups.jsonl"), bf16_weights=bf16_weights)
    summary = train_reader([data], tmp_path / "reader", cfg, show_progress=False)
    assert summary["finished"] and summary["examples_available"] == 8
    assert summary["windows_seen"] == 16 and summary["steps"] == 4  # 8 groups of 2 windows, 2 groups a batch
    assert (tmp_path / "reader" / "model.safetensors").is_file()
    from qa.reading.reader import Reader

    result = Reader(tmp_path / "reader").read("When do trusts go live?", [Passage("p", "d", 0, len(context), context)])
    assert all(context[s.start: s.end] == s.text for s in result.spans)


def test_master_weights_keep_updates_too_small_for_bf16():
    """1.0 + 100 updates of 1e-4: bf16 (8-bit mantissa, spacing 2^-7 near 1) rounds each one away; the
    fp32 master copy adds them up to 1.01, and the model gets the rounded sum."""
    from qa.training.precision import MasterWeights

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    master = MasterWeights(model)
    assert model.weight.dtype == torch.bfloat16
    optimizer = torch.optim.SGD(master.params, lr=1e-4)
    for _ in range(100):
        model.weight.grad = torch.full_like(model.weight, -1.0)
        master.grads_to_master()
        assert model.weight.grad is None and master.params[0].grad.dtype == torch.float32
        optimizer.step()
        master.master_to_model()
    assert master.params[0].item() == pytest.approx(1.01, abs=1e-5)
    assert model.weight.item() == pytest.approx(1.0078125)  # 1.01 rounded to bf16 (1 + 2^-7)
    plain = torch.tensor(1.0, dtype=torch.bfloat16)
    for _ in range(100):
        plain = plain + torch.tensor(1e-4, dtype=torch.bfloat16)
    assert plain.item() == 1.0, "without a master copy the updates vanish"
    master.restore_fp32(model)
    assert model.weight.dtype == torch.float32 and model.weight.item() == pytest.approx(1.01, abs=1e-5)


def test_single_groups_keep_each_answer_at_its_offsets_in_a_cut_paragraph():
    from qa.squad import SquadExample
    from qa.training.passages import single_groups

    filler = " ".join(f"word{i}" for i in range(400))  # about 3,500 characters
    context = f"{filler} The trusts go live in April 2000 across England. {filler}"
    at = context.index("April 2000")
    long = SquadExample("a", "T", context, "When?", (("April 2000", at), ("April 2000", at)), "s.json")
    short = SquadExample("b", "T", "It opened in 1932.", "When?", (("1932", 13),), "s.json")
    none = SquadExample("c", "T", "It opened in 1932.", "Who?", (), "s.json")
    # Two answers far apart: the cut is around the first, and the second, outside it, is dropped.
    far = SquadExample("d", "T", context, "Which?", (("April 2000", at), ("word0", 0)), "s.json")

    groups = {g.id: g for g in single_groups([long, short, none, far], max_chars=600)}
    assert set(groups) == {"a", "b", "d"}  # the unanswerable one has nothing to read
    for g in (groups["a"], groups["d"]):
        (passage,), (spans,) = g.passages, g.answers
        assert g.kind == "single" and len(passage) <= 600 and passage in context
        assert spans == ((passage.index("April 2000"), passage.index("April 2000") + 10),)  # once, not twice
        assert passage[0] != " " and passage[-1] != " " and not passage.startswith("ord")  # cut at whitespace
    assert groups["b"].passages == ("It opened in 1932.",) and groups["b"].answers == (((13, 17),),)
