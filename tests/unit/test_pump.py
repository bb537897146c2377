"""The suggestion pump's batches: sized by the callers waiting, up to `max_batch_size`, and callers
who asked while a batch was being made are still served by the next one."""
from __future__ import annotations

import threading
import time

import pytest

from orchestrator.searchers.pump import SuggestionPump


class SlowProducer:
    """Makes numbered items, each batch only once the test lets it finish (a slow model fit)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.release = threading.Semaphore(0)
        self.count = 0

    def __call__(self, n: int) -> list[int]:
        self.sizes.append(n)
        self.release.acquire()
        self.count += n
        return list(range(self.count - n, self.count))


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the pump's thread did not get there"
        time.sleep(0.005)


@pytest.mark.parametrize(("max_batch", "second"), [(None, 4), (32, 32), (100, 40 + 2 - 3)])
def test_callers_waiting_during_a_batch_size_the_next(max_batch: int | None, second: int) -> None:
    producer = SlowProducer()
    pump: SuggestionPump[int, None] = SuggestionPump(producer, lambda event: None, queue_size=2, batch_size=4,
                                                     background=True, max_batch_size=max_batch)
    try:
        assert pump.take("w0") is None  # starts the first batch: one caller + the queue's 2
        wait_for(lambda: producer.sizes == [3])
        # 40 more workers ask while the first batch is being made.
        assert all(pump.take(f"w{i}") is None for i in range(1, 41))
        producer.release.release()
        # That batch was for w0; the 40 who asked since still wait: the next holds min(cap, 40 + 2 - 3 ready).
        wait_for(lambda: len(producer.sizes) == 2)
        assert producer.sizes[1] == second
        producer.release.release()
        wait_for(lambda: len(pump.ready_items()) == 3 + second)
        assert sorted(pump.take(f"w{i}") for i in range(3 + second)) == list(range(3 + second))
    finally:
        for _ in range(4):
            producer.release.release()
        pump.close(timeout=5)


def test_a_max_batch_below_the_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size must be >= batch_size"):
        SuggestionPump(lambda n: [], lambda event: None, queue_size=2, batch_size=4, background=True, max_batch_size=2)
