"""The host-wide measurement lock: measurements of separate processes never overlap, training
sections and measurements exclude each other, and a killed holder frees the host.

Processes are spawned (not forked), as Ray starts its workers; each imports torch once, so the
processes live for the whole module and take commands. Every test uses its own lock directory
(`LMNAS_LOCK_DIR`), so a study running on the same machine neither waits for these tests nor
disturbs them. Times are compared across processes with `time.time()`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from torch import nn

from trainers.efficiency import LatencyOptions, exclusive_measurement, host_busy, measure_latency
from trainers.efficiency.host_lock import LOCK_DIR_ENV, lock_path

SPAWN = mp.get_context("spawn")
TIMEOUT_S = 30.0


class Sleepy(nn.Module):
    """A forward that sleeps (so two of them overlap even on one core) and records when it ran."""

    def __init__(self, sleep_s: float) -> None:
        super().__init__()
        self.sleep_s = sleep_s
        self.first_start = self.last_end = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.first_start = self.first_start or time.time()
        time.sleep(self.sleep_s)
        self.last_end = time.time()
        return x


def serve(directory: str, inbox: Queue, outbox: Queue, start_together: Barrier) -> None:
    """A child process: runs ("latency", forward sleep, exclusive) or ("busy" | "measure", hold for)
    commands until it receives None, and reports what happened when."""
    os.environ[LOCK_DIR_ENV] = directory
    outbox.put("ready")
    while (command := inbox.get()) is not None:
        kind, seconds, *rest = command
        if kind == "latency":
            model = Sleepy(seconds)
            start_together.wait(timeout=TIMEOUT_S)  # so that, unlocked, the two measurements overlap
            lat = measure_latency(model, LatencyOptions(warmup=1, repeats=15, exclusive=rest[0]),
                                  lambda batch, seq, device: torch.zeros(batch, seq, device=device))
            outbox.put((model.first_start, model.last_end, lat.exclusive, lat.lock_wait_s))
            continue
        with host_busy() if kind == "busy" else exclusive_measurement() as hold:
            outbox.put(("in", time.time(), hold.held))
            time.sleep(seconds)
            # Stamped before the release, so a waiter that gets the lock next stamps a later time.
            outbox.put(("out", time.time(), hold.held))


@dataclass
class Child:
    process: BaseProcess
    inbox: Queue
    outbox: Queue

    def get(self) -> Any:
        return self.outbox.get(timeout=TIMEOUT_S)


def start_child(directory: Path, start_together: Barrier) -> Child:
    inbox, outbox = SPAWN.Queue(), SPAWN.Queue()
    process = SPAWN.Process(target=serve, args=(str(directory), inbox, outbox, start_together), daemon=True)
    process.start()
    return Child(process, inbox, outbox)


def stop(children: list[Child]) -> None:
    # Killed, not asked to exit: an interpreter with torch loaded takes a second to shut down, and
    # these children hold nothing that needs closing (the kernel drops their locks).
    for child in children:
        child.process.kill()
    for child in children:
        child.process.join(timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("locks")


@pytest.fixture(scope="module")
def children(lock_dir: Path) -> Iterator[list[Child]]:
    """Two children started together, so their imports overlap."""
    start_together = SPAWN.Barrier(2)
    started = [start_child(lock_dir, start_together) for _ in range(2)]
    assert [child.get() for child in started] == ["ready"] * 2
    yield started
    stop(started)


@pytest.fixture(autouse=True)
def private_lock_dir(lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(lock_dir))


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_processes_measure_one_after_the_other(children: list[Child]) -> None:
    def measure_both(exclusive: bool) -> list[tuple[float, float, bool, float]]:
        for child in children:
            child.inbox.put(("latency", 0.01, exclusive))
        return [child.get() for child in children]

    # Each measurement is 16 forwards of 10 ms: two that start together overlap unless serialised.
    a, b = measure_both(exclusive=True)
    assert a[2] and b[2], "both measurements held the lock"
    assert not overlap(a[:2], b[:2]), f"locked measurements overlapped: {a[:2]} and {b[:2]}"
    first, second = sorted((a, b))
    # The second waited for (most of) the first, and that wait is reported, not timed.
    assert second[3] >= 0.5 * (first[1] - first[0]) and first[3] < second[3]
    a, b = measure_both(exclusive=False)
    assert not a[2] and not b[2] and a[3] == b[3] == 0.0
    assert overlap(a[:2], b[:2]), "without the lock the two measurements should have overlapped"


def test_measurement_waits_for_running_sections_and_holds_back_new_ones(children: list[Child], lock_dir: Path) -> None:
    trainer = children[0]
    trainer.inbox.put(("busy", 0.4))
    trainer.inbox.put(("busy", 0.0))  # the next step, asked for as soon as the first one ends
    kind, _, held = trainer.get()
    assert (kind, held) == ("in", True)
    with exclusive_measurement(timeout_s=TIMEOUT_S, directory=lock_dir) as hold:
        got = time.time()
        time.sleep(0.3)
        released = time.time()
    section_end, next_start = trainer.get()[1], trainer.get()[1]
    trainer.get()
    assert hold.held and hold.waited_s > 0.2
    assert got >= section_end, "the measurement started while a training step was running"
    assert next_start >= released, "a new training step started while the measurement was waiting or timing"


def test_waiting_for_the_lock_is_not_part_of_the_budget(children: list[Child]) -> None:
    holder = children[0]
    holder.inbox.put(("measure", 0.5))
    assert holder.get()[0] == "in"
    lat = measure_latency(Sleepy(0.002), LatencyOptions(warmup=1, repeats=10_000, budget_s=0.3),
                          lambda batch, seq, device: torch.zeros(batch, seq, device=device))
    holder.get()
    assert lat.exclusive and lat.lock_wait_s > 0.3
    # Had the wait counted, the budget would have been spent before the first timing (n = 3).
    assert lat.n > 20 and lat.median_ms < 50


def test_sections_of_two_trainers_run_together(children: list[Child]) -> None:
    for child in children:
        child.inbox.put(("busy", 0.3))
    events = [[child.get() for _ in range(2)] for child in children]
    (a_in, a_out), (b_in, b_out) = events
    assert a_in[2] and b_in[2]
    assert overlap((a_in[1], a_out[1]), (b_in[1], b_out[1])), "shared sections should not serialise"


# A bare interpreter (no torch to import) that takes the measurement lock as a measurer does and
# keeps it until it is killed; what is tested is that the kernel, not the holder, gives it back.
HOLD_UNTIL_KILLED = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("in", flush=True)
time.sleep(60)
"""


def test_a_killed_holder_frees_the_host_and_a_wait_can_time_out(lock_dir: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_UNTIL_KILLED, str(lock_path("measure", lock_dir))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "in"
        with pytest.warns(RuntimeWarning, match="busy for more than"):
            with exclusive_measurement(timeout_s=0.2, directory=lock_dir) as hold:
                assert not hold.held and 0.2 <= hold.waited_s < 5
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait(timeout=TIMEOUT_S)
    with exclusive_measurement(timeout_s=5, directory=lock_dir) as hold:
        assert hold.held and hold.waited_s < 2


# ---- within one process -------------------------------------------------------------------------


def test_nested_measurement_in_one_thread_is_reentrant(lock_dir: Path) -> None:
    with exclusive_measurement(timeout_s=1, directory=lock_dir) as outer:
        with exclusive_measurement(timeout_s=1, directory=lock_dir) as inner:
            assert outer.held and inner.held and inner.waited_s == 0.0


def test_threads_of_one_process_measure_one_after_the_other(lock_dir: Path) -> None:
    spans: list[tuple[float, float]] = []

    def measure() -> None:
        with exclusive_measurement(timeout_s=TIMEOUT_S, directory=lock_dir):
            start = time.time()
            time.sleep(0.15)
            spans.append((start, time.time()))

    threads = [threading.Thread(target=measure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 2 and not overlap(*spans)


def test_a_measurement_waits_for_a_section_of_another_thread(lock_dir: Path) -> None:
    in_section, ended = threading.Event(), []

    def train() -> None:
        with host_busy(directory=lock_dir):
            in_section.set()
            time.sleep(0.3)
            ended.append(time.time())

    trainer = threading.Thread(target=train)
    trainer.start()
    in_section.wait(TIMEOUT_S)
    with exclusive_measurement(timeout_s=TIMEOUT_S, directory=lock_dir) as hold:
        got = time.time()
        with host_busy(directory=lock_dir) as inner:  # the host is already this thread's
            assert inner.held and inner.waited_s == 0.0
    trainer.join()
    assert hold.held and hold.waited_s > 0.2 and got >= ended[0]


def test_measuring_inside_a_training_section_is_an_error(lock_dir: Path) -> None:
    with host_busy(directory=lock_dir):
        with pytest.raises(RuntimeError, match="wait for itself"):
            with exclusive_measurement(directory=lock_dir):
                pass
    with exclusive_measurement(timeout_s=1, directory=lock_dir) as hold:  # the section is gone
        assert hold.held


def test_latency_holds_the_lock_by_default_and_can_skip_it() -> None:
    model = nn.Linear(4, 4)
    inputs = lambda batch, seq, device: torch.zeros(batch, seq, 4, device=device)  # noqa: E731
    locked = measure_latency(model, LatencyOptions(warmup=1, repeats=3), inputs)
    assert locked.exclusive and locked.lock_wait_s >= 0
    free = measure_latency(model, LatencyOptions(warmup=1, repeats=3, exclusive=False), inputs)
    assert not free.exclusive and free.lock_wait_s == 0.0


def test_an_unusable_lock_directory_warns_and_measures_anyway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(LOCK_DIR_ENV, str(blocker / "locks"))  # a directory under a file cannot exist
    with pytest.warns(RuntimeWarning, match="cannot lock"):
        lat = measure_latency(nn.Linear(4, 4), LatencyOptions(warmup=0, repeats=3),
                              lambda batch, seq, device: torch.zeros(batch, seq, 4, device=device))
    assert lat.n == 3 and not lat.exclusive
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a training step does not fail either, it only warns
        with pytest.warns(RuntimeWarning, match="cannot lock"), host_busy() as hold:
            assert not hold.held
