"""Suggestions computed off the caller's thread.

A model-based searcher can take seconds per suggestion; Tune's driver loop is blocked while
`suggest` runs, and so is every worker waiting for its next trial. `SuggestionPump` keeps a
small queue of ready suggestions filled by a background thread: `take` answers at once with a
ready item or None ("not ready yet"), and results posted by the driver are applied by the
same thread before the next batch is produced, so the driver never waits on the model.

Callers who ask while a batch is being made still wait when it lands and size the next batch
(at most `batch_size`); a batch sized by all waiting callers was tried and dropped: ax_mobo's joint
acquisition costs as much per candidate at 32 as at 4 (benchmarks/results/scale.txt).

When more workers are free than one batch serves, a model-based searcher cannot keep them busy on
short trials; with a `fill` function the pump answers the workers beyond one batch at once with
`fill(key)` (e.g. a space-filling candidate) instead of letting them wait behind the model.

Each batch is produced inside a `host_busy()` section (trainers/efficiency/host_lock.py): a
model fit on the driver's host takes the cores that the trials there time their forwards on, so a
latency measurement waits for the batch being made and no batch starts while one runs.

Two locks: `_cond` guards the queues (held for microseconds by both threads); `_work` guards
the producer's own state (held by the background thread while it produces, by the driver
only to save or restore that state).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Generic, Hashable, Iterator, Sequence, TypeVar

from trainers.efficiency.host_lock import host_busy

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Event = TypeVar("Event")


class Exhausted(Exception):
    """Raised by a producer that has nothing more to propose, ever."""


class SuggestionPump(Generic[Item, Event]):
    """A queue of ready suggestions, refilled by `produce(n)` and kept aware of results.

    `produce(n)` returns up to n new items (it may return fewer) or raises `Exhausted`;
    `apply(event)` records one result. Both are only ever called with the work lock held.
    With `background=False` everything runs in the caller's thread (deterministic, for tests).

    `fill(key)`, when given, is called in the caller's thread WITHOUT the work lock (the model may
    be busy for seconds), so it must not touch what `produce` / `apply` use; it may `post` an event
    for them. It returns an item, or None when it has none (the caller then waits as usual).
    """

    def __init__(
        self,
        produce: Callable[[int], Sequence[Item]],
        apply: Callable[[Event], None],
        *,
        queue_size: int,
        batch_size: int,
        background: bool,
        fill: Callable[[Hashable], Item | None] | None = None,
        name: str = "suggestion-pump",
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError(f"queue_size and batch_size must be >= 1, got {queue_size}, {batch_size}")
        self._produce = produce
        self._apply = apply
        self._fill_one = fill
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.background = background
        self._name = name
        self._work = threading.RLock()
        self._cond = threading.Condition()
        self._ready: deque[Item] = deque()
        self._inbox: deque[Event] = deque()
        # Callers that got None and are not yet served by a batch: the next batch serves them at once.
        self._waiting: set[Hashable] = set()
        self._closing = False
        self._finished = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ---- the driver's side -----------------------------------------------------------------------
    def take(self, key: Hashable, free: int = 1) -> Item | None:
        """A ready item, or None when none is ready (the caller asks again later).

        `free`: how many workers are free to start a trial, this caller included. When none is
        ready and more are free than one batch serves, this caller gets `fill(key)` at once (the
        first `batch_size` free workers are left to the model).

        Raises the producer's error, if the background thread hit one, so failures surface
        in the driver instead of silently starving the workers.
        """
        if not self.background:
            with self._work:
                self._drain()
                if not self._ready and not self._finished:
                    filled = self._fill_beyond_batch(key, free)
                    if filled is not None:
                        return filled
                    self._fill(1)
                return self._ready.popleft() if self._ready else None
        with self._cond:
            if self._error is not None:
                raise RuntimeError(f"{self._name}: the background producer failed: {self._error}") from self._error
            if self._ready:
                self._waiting.discard(key)
                return self._ready.popleft()
            finished = self._finished
        if not finished:
            filled = self._fill_beyond_batch(key, free)
            if filled is not None:
                return filled
        with self._cond:
            if not self._finished:
                self._waiting.add(key)
                self._start()
                self._cond.notify_all()
            return None

    def _fill_beyond_batch(self, key: Hashable, free: int) -> Item | None:
        """`fill(key)` when more workers are free than one batch serves, else None."""
        if self._fill_one is None or free <= self.batch_size:
            return None
        return self._fill_one(key)

    def post(self, event: Event) -> None:
        """Queue a result; it is applied before the next batch is produced."""
        with self._cond:
            self._inbox.append(event)
            if self.background:
                self._start()
                self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """True once the producer is exhausted and no ready item is left."""
        with self._cond:
            return self._finished and not self._ready

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Exclusive access to the producer's state, with every posted result applied."""
        with self._work:
            self._drain()
            yield

    def ready_items(self) -> list[Item]:
        with self._cond:
            return list(self._ready)

    def restore(self, items: Sequence[Item]) -> None:
        """Put saved ready items back (after a restart)."""
        with self._cond:
            self._ready.extend(items)

    def close(self, timeout: float | None = 60.0) -> None:
        """Stop the background thread (after the batch in progress, if any)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ---- the producer's side ---------------------------------------------------------------------
    def _start(self) -> None:
        """Start the thread on first use (called with `_cond` held)."""
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def _wanted(self) -> int:
        """How many items the next batch should hold (called with `_cond` held)."""
        if self._finished:
            return 0
        return max(0, min(self.batch_size, self.queue_size + len(self._waiting) - len(self._ready)))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._inbox and self._wanted() == 0:
                    self._cond.wait()
                if self._closing:
                    return
            try:
                with self._work:
                    self._drain()
                    with self._cond:
                        n = self._wanted()
                        asked = set(self._waiting)
                    produced = self._fill(n, asked) if n else 0
                if n and not produced:
                    # Nothing came out (and the producer is not exhausted): do not spin.
                    with self._cond:
                        self._cond.wait(1.0)
            except BaseException as exc:  # surfaced to the driver by `take`
                logger.exception("%s: producer failed", self._name)
                with self._cond:
                    self._error = exc
                return

    def _drain(self) -> None:
        """Apply posted results (called with `_work` held)."""
        with self._cond:
            events = list(self._inbox)
            self._inbox.clear()
        for event in events:
            self._apply(event)

    def _fill(self, n: int, asked: set[Hashable] | None = None) -> int:
        """Produce up to n items into the ready queue (called with `_work` held); how many came.
        The batch serves the callers `asked` (all when None); those who asked while it was being
        produced still wait, and size the next batch."""
        try:
            # A model fit takes the cores that trials on this host time their forwards on: it is a
            # host_busy section, so a measurement waits for it and none starts while it runs.
            with host_busy():
                items = list(self._produce(n))
        except Exhausted:
            items = []
            with self._cond:
                self._finished = True
        with self._cond:
            self._ready.extend(items)
            if items:
                if asked is None:
                    self._waiting.clear()
                else:
                    self._waiting -= asked
        return len(items)
