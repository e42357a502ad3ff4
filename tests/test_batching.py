"""The batching queue: concurrent callers' items run together, each caller gets exactly its own results."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from qa.batching import BatchQueue


class Recorder:
    """A batch function that squares numbers, slowly, and records each batch it was given."""

    def __init__(self, delay: float = 0.02):
        self.batches: list[list[int]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(items))
        time.sleep(self.delay)
        return [x * x for x in items]


def test_a_lone_caller_runs_at_once_with_its_own_items():
    run = Recorder(delay=0)
    queue = BatchQueue(run, max_items=8, max_wait_s=10.0)  # a long wait would show if it waited
    t0 = time.monotonic()
    assert queue.submit([1, 2, 3]) == [1, 4, 9]
    assert time.monotonic() - t0 < 5.0
    assert run.batches == [[1, 2, 3]] and queue.submit([]) == []


def test_concurrent_callers_share_runs_and_get_their_own_results():
    run = Recorder()
    queue = BatchQueue(run, max_items=64, max_wait_s=0.05)
    groups = [[10 * g + i for i in range(g % 4 + 1)] for g in range(40)]
    barrier = threading.Barrier(len(groups))

    def call(items):
        barrier.wait()
        return queue.submit(items)

    with ThreadPoolExecutor(len(groups)) as pool:
        results = list(pool.map(call, groups))
    assert results == [[x * x for x in g] for g in groups]  # the oracle: each group squared on its own
    assert len(run.batches) < len(groups), "no two callers were batched together"
    assert sorted(x for b in run.batches for x in b) == sorted(x for g in groups for x in g)  # each item once
    assert max(len(b) for b in run.batches) <= 64
    assert (queue.runs, queue.items) == (len(run.batches), sum(map(len, groups)))


def test_a_batch_never_exceeds_max_items_nor_splits_a_group():
    run = Recorder()
    queue = BatchQueue(run, max_items=5, max_wait_s=0.05)
    groups = [[g * 100 + i for i in range(3)] for g in range(12)] + [list(range(5000, 5009))]  # one of 9 > 5
    with ThreadPoolExecutor(len(groups)) as pool:
        results = list(pool.map(queue.submit, groups))
    assert results == [[x * x for x in g] for g in groups]
    for batch in run.batches:
        assert len(batch) <= 5 or batch == groups[-1]
        members = {x // 100 for x in batch}
        for m in members:  # a group is in one batch, whole
            assert [x for x in batch if x // 100 == m] == ([y for g in groups for y in g if y // 100 == m])


def test_an_announced_caller_is_waited_for():
    run = Recorder(delay=0)
    queue = BatchQueue(run, max_items=8, max_wait_s=2.0)
    ready = threading.Event()

    def late():
        with queue.coming():
            ready.set()
            time.sleep(0.1)  # preparing its items
        return queue.submit([7])

    with ThreadPoolExecutor(2) as pool:
        other = pool.submit(late)
        ready.wait()
        assert queue.submit([3]) == [9]
        assert other.result() == [49]
    assert run.batches == [[3, 7]]


def test_an_error_reaches_every_caller_of_the_batch_and_the_queue_recovers():
    calls = []

    def fail_once(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("model failed")
        return items

    queue = BatchQueue(fail_once, max_items=8)
    with pytest.raises(RuntimeError, match="model failed"):
        queue.submit([1])
    assert queue.submit([2]) == [2]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        BatchQueue(lambda x: x, max_items=0)
