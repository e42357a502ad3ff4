"""Span decoding on hand-built logits, and the shipped reader on real passages."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from qa.reading.reader import DEFAULT_READER_DIR, Reader, decode_window
from qa.types import Passage

# A window laid out as [CLS] q q [SEP] c0 c1 c2 c3 c4 [SEP]: tokens 4..8 are the context.
CONTEXT = [4, 5, 6, 7, 8]
# Character offsets of each token in the passage text "Trusts go live in April 2000".
OFFSETS = [(0, 0), (0, 0), (0, 0), (0, 0), (0, 6), (7, 9), (10, 14), (15, 17), (18, 28), (0, 0)]


def logits(peaks: dict[int, float], n: int = 10, base: float = -5.0) -> np.ndarray:
    out = np.full(n, base)
    for i, v in peaks.items():
        out[i] = v
    return out


def test_best_span_maps_to_character_offsets():
    spans, _ = decode_window(logits({7: 5.0}), logits({8: 5.0}), CONTEXT, OFFSETS)
    assert (spans[0].start, spans[0].end) == (15, 28)  # "in April 2000"


def test_start_after_end_is_rejected():
    # The strongest start (token 8) lies after the strongest end (token 5): that pair must not be
    # decoded; the best valid pairs start at or before their end.
    spans, _ = decode_window(logits({8: 9.0, 6: 4.0}), logits({5: 9.0, 8: 4.0}), CONTEXT, OFFSETS)
    assert spans, "a valid span exists"
    assert all(s.start < s.end for s in spans)
    assert (spans[0].start, spans[0].end) == (18, 28)  # start 8 with end 8 beats start 6 with end 8


def test_a_span_never_crosses_a_paragraph_break():
    # "Trusts\n\nApril 2000": tokens 4 "Trusts" (0-6), 5 "April" (8-13), 6 "2000" (14-18). The strongest
    # start is the heading, the strongest end is in the paragraph below: paired, they would quote across
    # the blank line. With the text given, the best span must stay inside one paragraph.
    text = "Trusts\n\nApril 2000"
    offsets = [(0, 0)] * 4 + [(0, 6), (8, 13), (14, 18), (0, 0)]
    s, e = logits({4: 9.0, 5: 6.0}, n=8), logits({6: 9.0, 4: 2.0}, n=8)
    crossing, _ = decode_window(s, e, [4, 5, 6], offsets)
    assert (crossing[0].start, crossing[0].end) == (0, 18), "without the text the pair is allowed"
    spans, _ = decode_window(s, e, [4, 5, 6], offsets, text=text)
    assert spans and all("\n\n" not in text[x.start: x.end] for x in spans)
    assert text[spans[0].start: spans[0].end] == "April 2000"


def test_maximum_answer_length_in_tokens():
    # Start at token 4, end at token 8: 5 tokens long. Allowed at 5, rejected at 4.
    s, e = logits({4: 9.0}), logits({8: 9.0})
    long_ok, _ = decode_window(s, e, CONTEXT, OFFSETS, max_answer_tokens=5)
    assert (long_ok[0].start, long_ok[0].end) == (0, 28)
    short, _ = decode_window(s, e, CONTEXT, OFFSETS, max_answer_tokens=4)
    assert all((x.start, x.end) != (0, 28) for x in short)
    assert all(x.end - x.start <= 28 for x in short)


def test_question_tokens_are_never_an_answer():
    # Huge logits on question tokens 1-2 must be ignored: only context tokens are decoded.
    spans, _ = decode_window(logits({1: 50.0, 5: 1.0}), logits({2: 50.0, 5: 1.0}), CONTEXT, OFFSETS)
    assert (spans[0].start, spans[0].end) == (7, 9)  # "go"
    assert all(s.start >= 0 and s.end <= 28 and s.end > s.start for s in spans)


def test_logit_scores_by_hand():
    # Start logit 5 at token 7, end logit 5 at token 8: sigmoid(0.1 * (5 + 5)) = sigmoid(1) = 0.7311.
    # [CLS] logits are the base -5 each: no-answer sigmoid(0.1 * -10) = sigmoid(-1) = 0.2689.
    spans, null = decode_window(logits({7: 5.0}), logits({8: 5.0}), CONTEXT, OFFSETS)
    assert (spans[0].start, spans[0].end) == (15, 28)
    assert spans[0].score == pytest.approx(0.7310586)
    assert null == pytest.approx(0.2689414)


def test_logit_scores_compare_across_windows():
    # Window A: one clear but modest peak (logits 4 + 4) among flat -5s. Window B: a stronger span
    # (8 + 8) with a close rival (7.5 at the same end). Scored by logits, B ranks first, as its
    # evidence is stronger: sigmoid(1.6) > sigmoid(0.8).
    a, _ = decode_window(logits({7: 4.0}), logits({8: 4.0}), CONTEXT, OFFSETS)
    b, _ = decode_window(logits({7: 8.0, 6: 7.5}), logits({8: 8.0}), CONTEXT, OFFSETS)
    assert a[0].score == pytest.approx(1 / (1 + np.exp(-0.8))) and b[0].score == pytest.approx(1 / (1 + np.exp(-1.6)))
    assert b[0].score > a[0].score


def test_empty_context_means_no_answer():
    spans, null = decode_window(np.zeros(4), np.zeros(4), [], OFFSETS[:4])
    assert spans == [] and null == 1.0


def test_missing_model_folder_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="qa train-reader"):
        Reader(tmp_path / "nothing")


@pytest.mark.integration
def test_shipped_reader_reads_and_maps_offsets():
    text = "Background.\n\nPrimary care trusts, which go live in April 2000, have been heralded as a UK hybrid."
    doc_offset = 1000  # the passage sits at offset 1000 of its document
    passage = Passage("d:1000-1097", "d", doc_offset, doc_offset + len(text), text)
    result = Reader.load().read("When do primary care trusts go live?", [passage])
    best = result.spans[0]
    assert "April 2000" in best.text
    assert text[best.start - doc_offset : best.end - doc_offset] == best.text
    assert 0.0 <= best.score <= 1.0 and 0.0 <= result.no_answer_score <= 1.0


@pytest.mark.integration
def test_equal_answers_in_several_passages_are_merged():
    a = "The trusts go live in April 2000 across England."
    b = "Everyone agreed the new bodies go live in April 2000."
    passages = [Passage("x:0-48", "x", 0, len(a), a), Passage("y:0-52", "y", 0, len(b), b)]
    result = Reader.load().read("When do the trusts go live?", passages)
    texts = [" ".join(s.text.split()) for s in result.spans]
    assert len(texts) == len(set(texts)), "equal answers are merged"
    best = result.spans[0]
    assert "april 2000" in best.text.lower()
    assert {o[0] for o in best.occurrences} == {"x", "y"}


@pytest.mark.integration
def test_long_passage_is_read_in_windows():
    filler = " ".join(f"Sentence {i} says nothing of note about the weather." for i in range(150))
    text = filler + " The chief executive of the trust is Mike Farrar. " + filler
    passage = Passage("long:0", "long", 0, len(text), text)
    result = Reader.load().read("Who is the chief executive of the trust?", [passage])
    assert "Mike Farrar" in result.spans[0].text


@pytest.mark.integration
def test_shipped_model_loads_offline_from_the_package():
    # A fresh interpreter with the hub forced offline and no cache: the reader must come from the package.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    code = (
        "from qa.reading.reader import Reader; from qa.types import Passage; t='It opened in 1999.';"
        "r=Reader.load().read('When did it open?', [Passage('a', 'a', 0, len(t), t)]); print(r.spans[0].text)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1999" in out.stdout
    assert (DEFAULT_READER_DIR / "model.safetensors").stat().st_size < 50 * 1024 * 1024


def _partitions(items):
    """Every way to split ``items`` into groups (the oracle: all set partitions, not only sorted runs)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in _partitions(rest):
        for i in range(len(smaller)):
            yield smaller[:i] + [[first] + smaller[i]] + smaller[i + 1:]
        yield [[first]] + smaller


@pytest.mark.parametrize("lengths", [[170, 30, 172, 35], [384, 60, 61, 200, 199, 380], [100] * 5, [7], [50, 400]])
def test_length_runs_compute_the_fewest_tokens_of_any_split(lengths):
    from qa.reading.windows import length_runs

    cost = lambda groups: sum(len(g) * max(lengths[i] for i in g) + 40 for g in groups)  # noqa: E731
    runs = length_runs(lengths, run_cost=40)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
    assert cost(runs) == min(cost(p) for p in _partitions(list(range(len(lengths)))))


def test_windows_of_very_different_lengths_run_apart_and_equal_ones_together():
    from qa.reading.windows import length_runs

    assert length_runs([380, 40, 45, 375]) == [[1, 2], [3, 0]]  # 2 x 45 + 2 x 380 + 2 runs, not 4 x 380
    assert length_runs([150, 152, 151]) == [[0, 2, 1]]  # padding 3 tokens costs less than a run
    assert length_runs([]) == []


@pytest.mark.integration
def test_windows_run_by_length_get_the_logits_of_one_padded_batch():
    """fp32 ONNX gives a window the same logits whatever its batch, so splitting changes nothing."""
    from qa.reading.windows import pad_batch

    reader = Reader(runtime="onnx")
    texts = ["Trusts go live in April 2000.",
             " ".join(f"Sentence {i} is about the weather in the north west." for i in range(60))
             + " The chief executive is Mike Farrar.", "Mike Farrar runs it."]
    windows = reader.windows("Who is the chief executive?", texts)
    assert max(len(w.input_ids) for w in windows) > 3 * min(len(w.input_ids) for w in windows)
    windower, model = reader._model()
    ids, types, mask = pad_batch([(w.input_ids, w.token_type_ids) for w in windows], windower.pad_id)
    whole = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    for row, (w, (starts, ends)) in enumerate(zip(windows, reader._forward(windows))):
        np.testing.assert_allclose(starts, whole.start_logits[row, : len(w.input_ids)], atol=1e-4)
        np.testing.assert_allclose(ends, whole.end_logits[row, : len(w.input_ids)], atol=1e-4)
