"""Distillation: the teacher's span scores laid out on the student's windows, and the loss towards them."""

from __future__ import annotations

import json
import math

import pytest

from helpers.cli import exit_status
from qa.training.config import TrainConfig
from qa.training.passages import PassageGroup, write_groups

torch = pytest.importorskip("torch")

CONTEXT = "Primary care trusts, which go live in April 2000, have been heralded as a UK hybrid."
DISTRACTOR = "Trusts are funded by the Department of Health."


def test_distill_loss_is_the_kl_divergence_worked_by_hand():
    from qa.training.distill import NEG, distill_loss

    # One group, one window. Position 3 is not allowed (a question token); position 4 has no teacher token.
    # Teacher logits over the 3 positions left, at T = 2: [0, 0, 2 ln 2] / 2 = [0, 0, ln 2] -> p_t = [1/4, 1/4, 1/2].
    # Student [0, 0, 0] -> p_s = [1/3, 1/3, 1/3].
    # KL = 2 * 1/4 * ln(3/4) + 1/2 * ln(3/2) = 0.5 * (-0.287682) + 0.5 * 0.405465 = 0.058892; times T^2 = 0.235566.
    student = torch.tensor([[0.0, 0.0, 0.0, 9.0, 9.0]])
    teacher = torch.tensor([[0.0, 0.0, 2 * math.log(2), 5.0, NEG]])
    allowed = torch.tensor([[1, 1, 1, 0, 1]], dtype=torch.bool)
    loss = distill_loss(student, teacher, allowed, torch.tensor([0]), 1, temperature=2.0)
    assert loss.item() == pytest.approx(4 * (0.5 * math.log(0.75) + 0.5 * math.log(1.5)), rel=1e-5)
    assert loss.item() == pytest.approx(0.235566, rel=1e-4)
    # A student that agrees with the teacher (up to a constant, which a softmax ignores) has nothing to learn.
    assert distill_loss(teacher + 3.0, teacher, allowed, torch.tensor([0]), 1).item() == pytest.approx(0.0, abs=1e-6)


def test_distill_loss_shares_one_softmax_across_a_groups_windows():
    from qa.training.distill import distill_loss

    # Two windows of one group: the teacher puts all its mass in window 1, the student spreads it evenly.
    # Per-window softmaxes would see two uniform-vs-peaked pairs; one shared softmax sees 4 positions where
    # p_t = [e^0, e^0, e^4, e^0] / (3 + e^4) and p_s = 1/4 each.
    teacher = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    student = torch.zeros(2, 2)
    allowed = torch.ones(2, 2, dtype=torch.bool)
    z = 3 + math.e ** 4
    p = [1 / z, 1 / z, math.e ** 4 / z, 1 / z]
    expected = sum(q * math.log(q / 0.25) for q in p)
    loss = distill_loss(student, teacher, allowed, torch.tensor([0, 0]), 1, temperature=1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_by_default_the_teacher_is_learnt_only_on_questions_with_an_answer():
    from qa.training.distill import answerable_groups, distill_loss

    # Group 0 (windows 0-1): unanswerable, its gold is [CLS] (column 0) in each window. Group 1 (windows 2-3):
    # the answer starts at column 2 of window 3, window 2 doesn't hold it. Group 2 (window 4): answer at column 1.
    gold = torch.zeros(5, 3, dtype=torch.bool)
    gold[0, 0] = gold[1, 0] = gold[3, 2] = gold[4, 1] = True
    group = torch.tensor([0, 0, 1, 1, 2])
    assert answerable_groups(gold, group, 3).tolist() == [False, True, True]

    # The teacher disagrees with the student only in group 0: left out, nothing is learnt from it; group 1's
    # and group 2's KL is 0, so the mean over the two groups kept is 0. With every group kept, group 0's
    # KL (teacher all on one of 6 positions vs a uniform student: ln 6, T = 1) over 3 groups: ln 6 / 3.
    allowed = torch.ones(5, 3, dtype=torch.bool)
    student = torch.zeros(5, 3)
    teacher = torch.zeros(5, 3)
    teacher[1, 2] = 1e3
    keep = answerable_groups(gold, group, 3)
    assert distill_loss(student, teacher, allowed, group, 3, 1.0, keep).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(student, teacher, allowed, group, 3, 1.0).item() == pytest.approx(math.log(6) / 3, rel=1e-4)


@pytest.fixture(scope="module")
def tokenizers():
    """The student's tokenizer, and the same vocabulary with MPNet's pair layout: ``[CLS] q [SEP] [SEP] p [SEP]``
    (one more special token before the passage, as all-mpnet-base-v2's ``<s> q </s></s> p </s>``)."""
    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from qa.training.trainer import default_base_model

    student = AutoTokenizer.from_pretrained(default_base_model())
    backend = student.backend_tokenizer.__class__.from_str(student.backend_tokenizer.to_str())
    cls, sep = student.cls_token_id, student.sep_token_id
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    teacher = PreTrainedTokenizerFast(tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]",
                                      pad_token="[PAD]", unk_token="[UNK]")
    return student, teacher


def test_teacher_positions_are_found_by_character_offsets(tokenizers):
    from qa.reading.windows import WindowTokenizer
    from qa.training.distill import align

    student_tok, teacher_tok = tokenizers
    question, passages = "When do trusts go live?", [DISTRACTOR, CONTEXT]
    student = WindowTokenizer(student_tok, 384, 128, 64).windows([question] * 2, passages)
    teacher = WindowTokenizer(teacher_tok, 384, 128, 64).windows([question] * 2, passages)
    assert [w.input_ids[len(student_tok(question).input_ids)] for w in teacher] == [student_tok.sep_token_id] * 2
    maps = align(student, teacher)
    for sw, pairs in zip(student, maps):
        assert pairs[0] == (0, sw.sample, 0)  # [CLS] to [CLS] of the same passage's window
        assert [s for s, _, _ in pairs[1:]] == list(sw.context_tokens)  # every passage token found
        # Worked out: the teacher's passage tokens sit one place later (its extra [SEP]), with the same ids.
        assert all(p == s + 1 and teacher[t].input_ids[p] == sw.input_ids[s] for s, t, p in pairs[1:])


def test_teacher_logits_land_on_the_student_positions(tokenizers):
    from qa.training.distill import NEG, teacher_logits
    from qa.training.shared_norm import collate_groups, featurize_groups

    student_tok, teacher_tok = tokenizers
    group = PassageGroup("q", "When do trusts go live?", "answerable", "t", (DISTRACTOR, CONTEXT), ((), ((38, 48),)))
    feats = featurize_groups(student_tok, [group], TrainConfig(), teacher_tokenizer=teacher_tok)
    batch = collate_groups(feats, [0], student_tok.pad_token_id)

    class Echo(torch.nn.Module):  # a "teacher" whose start logit at each position is the token id there
        def forward(self, input_ids, attention_mask, token_type_ids=None):
            from types import SimpleNamespace

            return SimpleNamespace(start_logits=input_ids.float(), end_logits=-input_ids.float())

    start, end = teacher_logits(Echo(), feats, [0], teacher_tok.pad_token_id, batch.input_ids.shape)
    found = start > NEG / 2
    assert torch.equal(found, batch.allowed), "exactly the student's [CLS] and passage positions"
    assert torch.equal(start[found], batch.input_ids[found].float())  # same token at every mapped position
    assert torch.equal(end[found], -start[found])


@pytest.mark.integration
def test_a_distillation_run_trains_and_the_teacher_agrees_with_itself(tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa.reading.reader import DEFAULT_READER_DIR, Reader
    from qa.training.distill import distill_loss, teacher_logits
    from qa.training.shared_norm import collate_groups, featurize_groups
    from qa.training.trainer import train_reader
    from qa.types import Passage

    groups = [PassageGroup(f"q{i}", "When do trusts go live?", "answerable", "t", (DISTRACTOR, CONTEXT),
                           ((), ((38, 48),))) for i in range(4)]
    write_groups(groups, tmp_path / "groups.jsonl")

    # The shipped reader as its own teacher: the same windows, so the teacher's distribution is its own.
    tok = AutoTokenizer.from_pretrained(DEFAULT_READER_DIR)
    model = AutoModelForQuestionAnswering.from_pretrained(DEFAULT_READER_DIR, dtype="float32").eval()
    feats = featurize_groups(tok, groups[:2], TrainConfig(), teacher_tokenizer=tok)
    batch = collate_groups(feats, [0, 1], tok.pad_token_id)
    start, _ = teacher_logits(model, feats, [0, 1], tok.pad_token_id, batch.input_ids.shape)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        own = model(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                    attention_mask=batch.attention_mask).start_logits.float()
    assert distill_loss(own, start, batch.allowed, batch.group, 2).item() == pytest.approx(0.0, abs=1e-3)

    data = tmp_path / "train.json"
    data.write_text(json.dumps({"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": CONTEXT, "qas": [{"id": "q", "question": "When?", "answers": [
            {"text": "April 2000", "answer_start": 38}]}]}]}]}), encoding="utf-8")
    cfg = TrainConfig(batch_size=4, holdout_fraction=0.0, checkpoint_minutes=0.0, max_length=64, stride=16,
                      groups=str(tmp_path / "groups.jsonl"), teacher=str(DEFAULT_READER_DIR), base_model=str(DEFAULT_READER_DIR))
    summary = train_reader([data], tmp_path / "reader", cfg, show_progress=False)
    assert summary["finished"] and summary["steps"] == 2 and summary["config"]["teacher"] == str(DEFAULT_READER_DIR)
    result = Reader(tmp_path / "reader").read("When do trusts go live?", [Passage("p", "d", 0, len(CONTEXT), CONTEXT)])
    assert result.spans and all(CONTEXT[s.start: s.end] == s.text for s in result.spans)


def test_a_teacher_needs_passage_groups(tmp_path):
    from qa.errors import InvalidInput
    from qa.training.trainer import train_reader

    with pytest.raises(InvalidInput, match="--groups"):
        train_reader([tmp_path / "x.json"], tmp_path / "out", TrainConfig(teacher="some/reader"), show_progress=False)


@pytest.mark.parametrize("extra,words", [
    ([], "--teacher needs --groups"),
    (["--groups", "GROUPS"], "No reader at"),
    (["--groups", "GROUPS", "--teacher-is-a-reader", "--distill-weight", "1.5"],
     "argument --distill-weight: must be between 0 and 1, got 1.5"),
])
def test_bad_distillation_settings_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    data, groups, reader = tmp_path / "d.json", tmp_path / "g.jsonl", tmp_path / "reader"
    data.write_text('{"data": []}')
    groups.write_text("")
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    teacher = str(reader) if "--teacher-is-a-reader" in extra else str(tmp_path / "nothing")
    extra = [str(groups) if a == "GROUPS" else a for a in extra if a != "--teacher-is-a-reader"]
    argv = ["train-reader", "--data", str(data), "--out", str(tmp_path / "out"), "--teacher", teacher, *extra]
    assert exit_status(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,words", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--freeze-layers", "-2"], "argument --freeze-layers: must be at least 0, got -2"),
    (["--lr", "0"], "argument --lr: must be more than 0, got 0"),
    (["--time-budget", "-5"], "argument --time-budget: must be more than 0, got -5"),
    (["--stride", "400"], "--stride must be below --max-length (384), got 400"),
    (["--holdout", "1"], "--holdout must be 0 or more and below 1, got 1.0"),
])
def test_bad_training_numbers_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    data = tmp_path / "d.json"
    data.write_text('{"data": []}')
    assert exit_status(["train-reader", "--data", str(data), "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
