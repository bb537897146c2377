"""The suggestion pump's batches: callers who asked while a batch was being made are still served
by the next one, which is sized by them (up to `batch_size`)."""
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


@pytest.mark.parametrize(("batch_size", "second"), [(4, 4), (64, 40 + 2 - 3)])
def test_callers_waiting_during_a_batch_size_the_next(batch_size: int, second: int) -> None:
    producer = SlowProducer()
    pump: SuggestionPump[int, None] = SuggestionPump(producer, lambda event: None, queue_size=2,
                                                     batch_size=batch_size, background=True)
    try:
        assert pump.take("w0") is None  # starts the first batch: one caller + the queue's 2
        wait_for(lambda: producer.sizes == [3])
        # 40 more workers ask while the first batch is being made.
        assert all(pump.take(f"w{i}") is None for i in range(1, 41))
        producer.release.release()
        # That batch was for w0; the 40 who asked since still wait: the next holds min(batch, 40 + 2 - 3 ready).
        wait_for(lambda: len(producer.sizes) == 2)
        assert producer.sizes[1] == second
        producer.release.release()
        wait_for(lambda: len(pump.ready_items()) == 3 + second)
        assert sorted(pump.take(f"w{i}") for i in range(3 + second)) == list(range(3 + second))
    finally:
        for _ in range(4):
            producer.release.release()
        pump.close(timeout=5)


@pytest.mark.parametrize("background", [True, False])
def test_workers_beyond_one_batch_are_filled_at_once(background: bool) -> None:
    producer = SlowProducer()
    filled: list[str] = []

    def fill(key: str) -> int:
        filled.append(key)
        return -len(filled)

    pump: SuggestionPump[int, None] = SuggestionPump(producer, lambda event: None, queue_size=1, batch_size=4,
                                                     background=background, fill=fill)
    try:
        # 10 workers free, the model busy (its batch blocks until released): 6 get a fill at once.
        answers = [pump.take(f"w{i}", free=10 - i) for i in range(6)]
        assert answers == [-1, -2, -3, -4, -5, -6] and filled == [f"w{i}" for i in range(6)]
        assert producer.sizes == []  # no fit was started for them
        if background:
            # The last 4 are left to the model: they wait for its batch, which serves them.
            assert all(pump.take(f"w{i}", free=10 - i) is None for i in range(6, 10))
            wait_for(lambda: len(producer.sizes) == 1)
            producer.release.release()
            wait_for(lambda: len(pump.ready_items()) >= 1)
        else:
            producer.release.release()
            assert pump.take("w6", free=4) == 0
        assert len(filled) == 6
    finally:
        for _ in range(4):
            producer.release.release()
        pump.close(timeout=5)


def test_a_latency_measurement_waits_while_the_model_produces(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model fit takes the cores that trials time forwards on: a measurement on this host waits for it."""
    from trainers.efficiency.host_lock import LOCK_DIR_ENV, exclusive_measurement

    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    producer = SlowProducer()
    pump: SuggestionPump[int, None] = SuggestionPump(producer, lambda event: None, queue_size=1, batch_size=1,
                                                     background=True)
    measured = threading.Event()

    def measure() -> None:
        with exclusive_measurement(timeout_s=10):
            measured.set()

    try:
        assert pump.take("w0") is None
        wait_for(lambda: len(producer.sizes) == 1)  # the model is producing
        threading.Thread(target=measure, daemon=True).start()
        time.sleep(0.3)
        assert not measured.is_set()
        producer.release.release()
        wait_for(measured.is_set)
    finally:
        for _ in range(4):
            producer.release.release()
        pump.close(timeout=5)
