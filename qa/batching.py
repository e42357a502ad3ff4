"""Run concurrent callers' model inputs through the model together: a small batching queue.

Each caller submits a group of items (one question's reader windows, or one request's query texts)
and blocks until their results come back. Groups are combined into one run of the model:

- while a run is in progress, new groups queue, and the next run takes them together;
- when the model is idle, the first group runs at once, unless other callers are about to submit
  (they announce it with :meth:`BatchQueue.coming` while they prepare their items): then it waits for
  them, at most ``max_wait_s``. A question asked alone never waits.

A run takes whole groups, first come first served, up to ``max_items`` items (a larger group runs
alone). One run at a time: on a small CPU, two forward passes at once only take cores from each other.
No thread of its own: whichever waiting caller finds the model idle runs the next batch for everyone.

Example:
    >>> queue = BatchQueue(lambda texts: [t.upper() for t in texts], max_items=32, max_wait_s=0.003)
    >>> queue.submit(["a", "b"])  # from any number of threads at once
    ['A', 'B']
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from typing import Callable, Generic, Iterator, Sequence, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_WAIT_S = 0.004


class _Group(Generic[T, R]):
    """One caller's items, and their results (or the error of the run) once done."""

    def __init__(self, items: list[T]):
        self.items = items
        self.arrived = time.monotonic()
        self.results: list[R] | None = None
        self.error: BaseException | None = None
        self.done = False


class BatchQueue(Generic[T, R]):
    """Combines concurrent callers' items into runs of ``run`` (see the module docstring); thread-safe.

    Args:
        run: maps a list of items to the list of their results, in order (e.g. a forward pass).
        max_items: most items in one run (whole groups only; a group larger than this runs alone).
        max_wait_s: longest an idle model waits for callers announced by :meth:`coming`.

    Attributes:
        runs, items: runs made and items run so far (``items / runs`` is the mean batch size).
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_items: int = 32,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S):
        if max_items < 1 or max_wait_s < 0:
            raise ValueError(f"max_items must be at least 1 and max_wait_s at least 0, got {max_items}, {max_wait_s}")
        self._run = run
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: deque[_Group[T, R]] = deque()
        self._running = False
        self._coming = 0
        self.runs = 0
        self.items = 0

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Announce, while preparing items, that this caller will :meth:`submit` shortly."""
        with self._cond:
            self._coming += 1
        try:
            yield
        finally:
            with self._cond:
                self._coming -= 1
                self._cond.notify_all()

    def submit(self, items: Sequence[T]) -> list[R]:
        """The results of ``items``, run together with other callers' items; blocks until they are done.

        Raises:
            Exception: whatever ``run`` raised for the batch these items were in.
        """
        group: _Group[T, R] = _Group(list(items))
        if not group.items:
            return []
        with self._cond:
            self._queue.append(group)
            self._cond.notify_all()
            while not group.done:
                if self._running or not self._queue:
                    self._cond.wait()
                    continue
                wait = self._wait_left()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                batch = self._take()
                self._running = True
                self._cond.release()
                try:
                    self._execute(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        if group.error is not None:
            raise group.error
        assert group.results is not None
        return group.results

    def _wait_left(self) -> float:
        """Seconds the idle model should still wait for announced callers (0: run now). Called locked."""
        if not self._coming or sum(len(g.items) for g in self._queue) >= self.max_items:
            return 0.0
        return self._queue[0].arrived + self.max_wait_s - time.monotonic()

    def _take(self) -> list[_Group[T, R]]:
        """Whole groups from the head of the queue, up to ``max_items`` items (at least one group). Called locked."""
        batch = [self._queue.popleft()]
        size = len(batch[0].items)
        while self._queue and size + len(self._queue[0].items) <= self.max_items:
            size += len(self._queue[0].items)
            batch.append(self._queue.popleft())
        self.runs += 1
        self.items += size
        return batch

    def _execute(self, batch: list[_Group[T, R]]) -> None:
        """Run the batch's items in one call and hand each group its results (or the error). Called unlocked."""
        flat = [item for group in batch for item in group.items]
        try:
            results = list(self._run(flat))
            if len(results) != len(flat):
                raise RuntimeError(f"the batch function returned {len(results)} results for {len(flat)} items")
        except BaseException as err:  # noqa: BLE001 - every caller in the batch receives it and raises it
            for group in batch:
                group.error, group.done = err, True
            return
        start = 0
        for group in batch:
            group.results = results[start : start + len(group.items)]
            group.done = True
            start += len(group.items)
