"""The app's answer cache: one computation per question, bounded in entries and in bytes."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import pytest

from qa.answering.question import MAX_QUESTION_CHARS
from qa.app.cache import AnswerCache, answer_bytes
from qa.types import Answer


class EchoQA:
    """Answers like the pipeline does: the stored question is stripped and cut to MAX_QUESTION_CHARS."""

    threshold = 0.3

    def __init__(self, evidence_chars: int = 0):
        self.calls = 0
        self.evidence = "e" * evidence_chars

    def ask(self, question, top_k=5, mode="hybrid", threshold=None):
        self.calls += 1
        return Answer(question=question.strip()[:MAX_QUESTION_CHARS], text=None, score=0.0, abstained=True,
                      evidence=self.evidence)


def test_huge_questions_do_not_stay_in_memory():
    """8 questions of 20 MB once left 205 MB behind (whole questions were the keys); now a few MB at most."""
    cache = AnswerCache(EchoQA())
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(8):
            question = f"{i} " + "x" * 20_000_000
            cache.ask(question)
            del question
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"kept {kept / 1e6:.2f} MB after 8 questions of 20 MB")
    assert kept < 2_000_000, f"the cache kept {kept:,} bytes"


def test_questions_that_differ_only_after_the_cut_share_an_answer():
    qa = EchoQA()
    cache = AnswerCache(qa)
    head = "q" * MAX_QUESTION_CHARS
    first = cache.ask(head + " one")
    second = cache.ask(head + " two")
    assert qa.calls == 1 and first is second  # the pipeline reads only the first MAX_QUESTION_CHARS characters


def test_the_byte_bound_evicts_the_least_recently_used():
    qa = EchoQA(evidence_chars=100_000)
    one = answer_bytes(AnswerCache(qa).ask("a?"))  # what one such answer is counted as (key aside)
    qa.calls = 0
    cache = AnswerCache(qa, size=1000, max_bytes=int(2.5 * one))  # room for two answers, not three
    cache.ask("a?")
    cache.ask("b?")
    cache.ask("a?")  # a is now the most recently used
    cache.ask("c?")  # evicts b
    assert qa.calls == 3
    assert cache.nbytes <= cache.max_bytes and len(cache) == 2
    cache.ask("a?")
    assert qa.calls == 3
    cache.ask("b?")
    assert qa.calls == 4


def test_an_answer_larger_than_the_bound_is_not_kept():
    qa = EchoQA(evidence_chars=10_000)
    cache = AnswerCache(qa, max_bytes=1_000)
    cache.ask("a?")
    cache.ask("a?")
    assert qa.calls == 2 and len(cache) == 0 and cache.nbytes == 0


def test_answer_bytes_counts_the_strings_an_answer_holds():
    small = EchoQA().ask("q?")
    big = EchoQA(evidence_chars=1_000_000).ask("q?")
    assert answer_bytes(big) - answer_bytes(small) >= 1_000_000


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        AnswerCache(EchoQA(), size=-1)
    with pytest.raises(ValueError):
        AnswerCache(EchoQA(), max_bytes=-1)


class CountingQA:
    threshold = 0.3

    def __init__(self):
        self.calls = 0

    def ask(self, question, top_k=5, mode="hybrid", threshold=None):
        if not question.strip():
            raise ValueError("The question is empty")
        self.calls += 1
        time.sleep(0.2)
        return (question, top_k, mode, threshold)


def test_answer_cache_runs_each_question_once_even_when_asked_together():
    qa = CountingQA()
    cache = AnswerCache(qa, size=2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.ask(" same? "))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert qa.calls == 1 and len(set(results)) == 1
    assert cache.ask("same?", threshold=0.3) == results[0] and qa.calls == 1  # None means the default threshold
    cache.ask("same?", mode="bm25")
    cache.ask("other?")
    cache.ask("same?")  # evicted: the cache holds two answers
    assert qa.calls == 4
    with pytest.raises(ValueError):
        cache.ask("  ")
    off = AnswerCache(qa, size=0)
    off.ask("same?")
    off.ask("same?")
    assert qa.calls == 6


def test_the_pipeline_the_live_pipeline_and_the_cache_are_answerers_of_one_request_shape():
    """One protocol, qa.answering.question.Answerer: each takes the same arguments with the same defaults,
    so the app may stack them (cache over live pipeline over pipeline) and a caller may hold any of them."""
    import inspect

    from qa.answering.pipeline import QA
    from qa.answering.question import Answerer
    from qa.app.documents import LiveQA

    wanted = inspect.signature(Answerer.ask).parameters
    for kind in (QA, LiveQA, AnswerCache):
        got = inspect.signature(kind.ask).parameters
        assert [(p.name, p.default) for p in got.values()] == [(p.name, p.default) for p in wanted.values()], kind
        assert isinstance(getattr(kind, "threshold"), property), kind
    cache = AnswerCache(CountingQA())
    assert isinstance(cache, Answerer) and cache.threshold == CountingQA.threshold
