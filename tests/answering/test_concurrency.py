"""Many threads asking at once get exactly the answers one thread gets (the app runs 4 workers).

The fast tokenizer keeps its truncation and padding settings in shared state; a reader that changes
them per call races with itself across threads (``ValueError: Unable to create tensor...`` or windows
that are not truncated). These tests shrink the interpreter's thread switch interval so threads
interleave far more often than in production, which makes such a race show up within a few hundred calls.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from qa.reading.reader import Reader
from qa.types import Passage

LONG_QUESTION = (
    "Which prime minister appointed the new ministerial team for health, and which of the ministers "
    "named in that reshuffle of the government was given responsibility for the reform of primary care "
    "trusts, the hospital trusts, the strategic health authorities, the workforce, the budgets and the "
    "public health programmes across England and Wales?"
)

QUESTIONS = [
    "When do primary care trusts go live?",
    "Who is the chief executive of NHS North West?",
    "Where is the Health Services Management Centre?",
    "What are primary care trusts heralded as a UK hybrid of?",
    LONG_QUESTION,
    "Who?",
    "Which university held the policy seminar on primary care trusts?",
    "What is the boiling point of liquid nitrogen?",
]


@pytest.fixture
def busy_switching():
    """Switch threads every microsecond instead of every 5 ms, so interleavings are dense."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(fn, jobs: list, threads: int) -> list:
    """``fn`` over ``jobs`` on ``threads`` threads, released together; exceptions are returned, not raised."""
    barrier = threading.Barrier(threads)

    def guarded(job):
        try:
            return fn(job)
        except Exception as err:  # noqa: BLE001 - the test reports every failure, not only the first
            return err

    def worker(chunk):
        barrier.wait()
        return [guarded(job) for job in chunk]

    chunks = [jobs[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, chunks))
    out = [None] * len(jobs)
    for i, chunk_results in enumerate(results):
        out[i::threads] = chunk_results
    return out


class ZeroModel:
    """Stands in for the span model: flat logits, and it checks the batch is what the reader promised."""

    def __init__(self, max_length: int):
        self.max_length = max_length

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        import torch

        assert input_ids.shape[1] <= self.max_length, f"untruncated window of {input_ids.shape[1]} tokens"
        assert input_ids.shape == attention_mask.shape
        zeros = torch.zeros(input_ids.shape, dtype=torch.float32)
        return SimpleNamespace(start_logits=zeros, end_logits=zeros.clone())


def test_concurrent_reads_match_single_threaded_reads(busy_switching):
    # The real tokenizer with a model that costs nothing: tokenization dominates, so a race on the
    # tokenizer's state shows up at once. Flat logits make the spans depend on the windows only.
    reader = Reader.load(runtime="torch")
    tokenizer_and_model = reader._model()
    fake = (*tokenizer_and_model[:-1], ZeroModel(reader.max_length))
    reader._model = lambda: fake
    text = " ".join(f"Sentence {i} tells that the trusts go live in April {1990 + i % 20}." for i in range(60))
    passages = [Passage(f"d:{i}", "d", 0, len(text), text) for i in range(3)]

    def read(question):
        return [(s.text, round(s.score, 9)) for s in reader.read(question, passages).spans]

    expected = {q: read(q) for q in QUESTIONS}
    jobs = QUESTIONS * 40
    got = run_threads(read, jobs, threads=8)
    failures = [(q, g) for q, g in zip(jobs, got) if g != expected[q]]
    assert not failures, f"{len(failures)} of {len(jobs)} reads differ or fail, e.g. {failures[:3]}"


@contextmanager
def other_tokenizer_users(reader: Reader):
    """A thread that keeps calling ``tokenize()`` on the reader's loaded tokenizer, as other requests'
    question handling did: a reader that relies on the tokenizer's shared settings breaks under it."""
    loaded = reader._model()[0]
    tokenizer = getattr(loaded, "tokenizer", loaded)  # the Hugging Face tokenizer, wrapped or not
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            tokenizer.tokenize(LONG_QUESTION)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.mark.integration
def test_concurrent_asks_match_single_threaded_asks(bundled_qa, busy_switching):
    qa = bundled_qa
    expected = {q: qa.to_json(qa.ask(q)) for q in QUESTIONS}
    jobs = QUESTIONS * 16  # 8 threads x 16 questions, every question 16 times
    with other_tokenizer_users(qa.reader):
        got = run_threads(lambda q: qa.to_json(qa.ask(q)), jobs, threads=8)
    failures = [(q, g) for q, g in zip(jobs, got) if g != expected[q]]
    assert not failures, f"{len(failures)} of {len(jobs)} asks differ or fail, e.g. {failures[:2]}"


def test_long_question_is_cut_to_max_query_length():
    # The question keeps its first max_query_length tokens: counted by an independent tokenizer call.
    from transformers import AutoTokenizer

    reader = Reader.load()
    tokenizer = AutoTokenizer.from_pretrained(str(reader.path))
    ids = tokenizer(LONG_QUESTION * 3, add_special_tokens=False)["input_ids"]
    assert len(ids) > reader.max_query_length
    seen = []

    def spy(input_ids, attention_mask, token_type_ids=None):
        seen.append(input_ids)
        return ZeroModel(reader.max_length)(input_ids, attention_mask, token_type_ids)

    fake = (*reader._model()[:-1], spy)
    reader._model = lambda: fake
    reader.read(LONG_QUESTION * 3, [Passage("p", "d", 0, 20, "It opened in 1999 or so.")])
    window = seen[0][0].tolist()
    sep = window.index(tokenizer.sep_token_id)
    assert window[1:sep] == ids[: reader.max_query_length]


@pytest.mark.integration
def test_concurrent_asks_share_forward_passes_and_keep_their_answers(bundled_qa):
    """N questions asked at once give the answers each gives alone, with fewer than N reader batches."""
    from qa.answering.pipeline import QA

    reader = Reader(max_wait_s=0.05)
    qa = QA(bundled_qa.retriever, reader)
    questions = QUESTIONS[:6] * 2  # 12 asks, each question twice
    alone = {q: qa.to_json(qa.ask(q)) for q in questions}  # the oracle: one question at a time
    runs, items = reader.batches.runs, reader.batches.items
    got = run_threads(lambda q: qa.to_json(qa.ask(q)), questions, threads=len(questions))

    def same(a: dict, b: dict) -> bool:  # exactly the same answer; the score to 1e-5 (float summation order)
        return {**a, "score": None} == {**b, "score": None} and abs(a["score"] - b["score"]) < 1e-5

    failures = [(q, g) for q, g in zip(questions, got) if isinstance(g, Exception) or not same(g, alone[q])]
    assert not failures, f"{len(failures)} of {len(questions)} asks differ or fail, e.g. {failures[:2]}"
    runs, items = reader.batches.runs - runs, reader.batches.items - items
    assert runs < len(questions), f"{runs} batches for {len(questions)} questions"
    assert items == 5 * len(questions), "every question's five windows were read, once"


@pytest.mark.parametrize("runtime, mixes", [("onnx", True), ("torch", True), ("onnx-int8", False),
                                            ("torch-bf16", False), ("torch-bf16-weights", False)])
def test_questions_are_mixed_in_a_forward_pass_only_on_batch_invariant_runtimes(runtime, mixes):
    # The real tokenizer, a stand-in model that records each batch: on bf16 and int8 a window's logits
    # depend on its batchmates, so there each forward pass holds one question's windows only.
    reader = Reader(runtime="onnx", max_wait_s=0.05)  # the tokenizer, loaded without torch
    windower = reader._model()[0]
    reader = Reader(runtime=runtime, max_wait_s=0.05)
    batches = []

    def recording(input_ids, attention_mask, token_type_ids=None):
        import time

        batches.append(input_ids.shape[0])
        time.sleep(0.05)  # a forward pass takes a while: others queue meanwhile
        return ZeroModel(reader.max_length)(input_ids, attention_mask, token_type_ids)

    reader._model = lambda: (windower, recording)
    passages = [Passage(f"d:{i}", "d", 0, 30, f"Passage {i} says it opened in 1999.") for i in range(3)]
    got = run_threads(lambda q: reader.read(q, passages).spans[0].text, QUESTIONS[:4] * 3, threads=12)
    assert all(isinstance(g, str) for g in got), got
    if mixes:
        assert len(batches) < 12 and max(batches) > 3, batches
    else:
        assert batches == [3] * 12, batches  # one question (3 windows) per pass
