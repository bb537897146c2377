"""A host-wide lock that keeps latency measurements apart, and lets training wait for them.

Trials that share a machine must not time their forward passes at the same time: two timings on
two cores slow each other (shared caches, memory bandwidth, frequency), and the measured latency
becomes a property of the neighbour. `exclusive_measurement()` serialises measurements of all
processes of one user on one host through `fcntl.flock` on a file in the system temp directory;
`measure_latency` holds it around its warm-up and timed forwards (not while building inputs, and
never during training), and the time spent waiting is not part of any timing.

A neighbour that trains or evaluates disturbs a timing as much as one that measures
(benchmarks/results/latency_interference.txt, 2 cores, one thread each: a MiniLM-sized forward
timed at a median 13.4-13.7 ms alone is timed at 29-31 ms beside a training process or beside
another measurement, and at 13.5-14.1 ms with this lock and training in sections). Training loops
therefore wrap each step in `host_busy()`: a shared (reader) lock, held by any number of trainers at
once, which the measurer's exclusive (writer) lock waits for. A measurer first closes a turnstile
(a second lock file) that every new section passes through, so trainers cannot keep the host busy
forever: the measurer waits for at most the steps already running, no new step starts meanwhile,
and the trainers resume when it is done. The study's driver marks its model fits the same way
(`ax_mobo`'s suggestion batches, `botorch_mobo`'s acquisition): on a small host they take the cores
the trials time on. Sections must be short (one optimiser step, one batch): a
measurer waits for the longest section that is running.

Why these choices:
- `flock`, not `lockf`/`fcntl` record locks: flock locks belong to an open file description, so two
  threads (each opening the file) exclude each other too, and closing an unrelated descriptor of
  the same file does not drop the lock. The kernel releases a flock lock when its holder exits or is
  killed, so a crashed trial never leaves the host locked (nothing to clean up, no stale pid files).
- One file per user and host: `/tmp` is sticky and, with `fs.protected_regular`, a process may not
  open another user's file there for writing; users therefore do not serialise with each other.
  The host name keeps machines apart when the temp directory is on a shared file system.
  `LMNAS_LOCK_DIR` moves the files elsewhere (e.g. a directory shared by containers on one node).
- Locking is best effort: when the files cannot be created or locked, or the wait exceeds its
  timeout, the measurement (or the step) runs without the lock and a warning says so; a search is
  never stopped because the host could not be made quiet.

Within one process: threads wait for each other's measurements, and a measurement waits for the
sections of other threads as for those of other processes. In one thread, a nested measurement, or
a section inside a measurement, passes at once (the host is already the thread's); a measurement
inside a section would wait for itself, so it raises `RuntimeError` instead. Threads of one process
that train at once share one section: a measurer waits until none of them is in a step.
POSIX only; elsewhere both context managers do nothing but report that no lock was held.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: no host lock, measurements run as before
    fcntl = None  # type: ignore[assignment]

#: environment variable naming the directory of the lock files (default: the system temp dir).
LOCK_DIR_ENV = "LMNAS_LOCK_DIR"
#: how long a measurement waits for the host before it measures anyway (a few trials' timings).
MEASURE_TIMEOUT_S = 300.0
#: how long a training step waits for a running measurement before it trains anyway.
BUSY_TIMEOUT_S = 120.0
# Polling, not a blocking flock, so a wait can time out; the cap bounds how late a waiter notices
# a released lock (small next to a measurement or a training step).
_POLL_MIN_S, _POLL_MAX_S = 0.001, 0.02


@dataclass(frozen=True)
class Hold:
    """What acquiring the host lock gave: whether it is held, and how long getting it took."""

    held: bool
    waited_s: float


def lock_directory() -> Path:
    """Where the lock files live: `$LMNAS_LOCK_DIR`, else the system temp directory."""
    return Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir())


def lock_path(role: str, directory: Path | None = None) -> Path:
    """The lock file of `role` ("measure" or "gate") for this user on this host."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
    return (directory or lock_directory()) / f"lmnas-{role}-uid{os.getuid()}-{host}.lock"


class _ProcessState:
    """This process's share of the host lock (flock locks are per open file; threads meet here)."""

    def __init__(self) -> None:
        # One measuring thread at a time; re-entrant, so a nested measurement in it waits for nothing.
        self.measure_mutex = threading.RLock()
        self.busy_mutex = threading.Lock()
        self.busy_count = 0
        self.busy_fds: tuple[int, ...] | None = None
        self.busy_hold = Hold(held=False, waited_s=0.0)


class _ThreadState(threading.local):
    """What this thread holds: nested measurements and sections (for the same-thread cases)."""

    measuring = 0
    sections = 0


_STATE = _ProcessState()
_THREAD = _ThreadState()


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _close(fd: int, unlock: bool = True) -> None:
    if unlock:
        fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child sharing the descriptor must not keep it
    os.close(fd)


def _flock(fd: int, operation: int, deadline: float | None) -> bool:
    """Take `operation` (LOCK_SH / LOCK_EX) on `fd`, polling until `deadline` (monotonic; None: forever)."""
    delay = _POLL_MIN_S
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return False
        time.sleep(delay if deadline is None else min(delay, deadline - now))
        delay = min(2 * delay, _POLL_MAX_S)


def _lock_host(operation: int, deadline: float | None, directory: Path | None) -> tuple[int, ...] | None:
    """Pass the turnstile and take `operation` on the measure file; the descriptors held, or None
    when the deadline passed first. A measurer (LOCK_EX) keeps the turnstile closed until it is done,
    so no new section starts while it waits; a section (LOCK_SH) only passes through it."""
    gate = _open(lock_path("gate", directory))
    try:
        if not _flock(gate, fcntl.LOCK_EX, deadline):
            _close(gate, unlock=False)
            return None
        main = _open(lock_path("measure", directory))
    except BaseException:
        os.close(gate)  # closing drops whatever this descriptor held
        raise
    try:
        acquired = _flock(main, operation, deadline)
    except BaseException:
        os.close(main)
        _close(gate)
        raise
    if not acquired:
        _close(main, unlock=False)
        _close(gate)
        return None
    if operation == fcntl.LOCK_SH:
        _close(gate)
        return (main,)
    return (main, gate)


def _unlock_host(fds: tuple[int, ...]) -> None:
    for fd in fds:  # the measure file first, then the turnstile: sections resume onto a free host
        _close(fd)


def _deadline(started: float, timeout_s: float | None) -> float | None:
    return None if timeout_s is None else started + timeout_s


def _warn(what: str) -> None:
    warnings.warn(f"{what}; continuing without the host measurement lock", RuntimeWarning, stacklevel=4)


@contextmanager
def exclusive_measurement(timeout_s: float | None = MEASURE_TIMEOUT_S,
                          directory: Path | None = None) -> Iterator[Hold]:
    """Hold the host exclusively for a latency measurement: no other measurement, no `host_busy()`
    section of this user runs meanwhile. Yields how long it waited and whether the lock is held."""
    if _THREAD.sections > 0:
        raise RuntimeError("exclusive_measurement() inside a host_busy() section of the same thread would wait "
                           "for itself; end the section before measuring")
    if _THREAD.measuring > 0:  # nested: the outer measurement of this thread holds the host
        _THREAD.measuring += 1
        try:
            yield Hold(held=True, waited_s=0.0)
        finally:
            _THREAD.measuring -= 1
        return
    started = time.monotonic()
    if not _STATE.measure_mutex.acquire(timeout=-1 if timeout_s is None else timeout_s):
        _warn(f"another thread of this process measured for more than {timeout_s} s")
        yield Hold(held=False, waited_s=time.monotonic() - started)
        return
    try:
        # Sections of other threads of this process hold the measure file through their own open
        # file, so this waits for them exactly as for another process's.
        held = _try_lock("LOCK_EX", started, timeout_s, directory, f"the host stayed busy for more than {timeout_s} s")
        _THREAD.measuring += 1
        try:
            yield Hold(held=held is not None, waited_s=time.monotonic() - started)
        finally:
            _THREAD.measuring -= 1
            if held is not None:
                _unlock_host(held)
    finally:
        _STATE.measure_mutex.release()


def _try_lock(mode: str, started: float, timeout_s: float | None, directory: Path | None,
              timed_out: str) -> tuple[int, ...] | None:
    """The host lock in `mode` (fcntl's LOCK_EX or LOCK_SH), or None with a warning: the work goes on
    unlocked when the lock is slow to come or cannot be taken (no fcntl, an unwritable directory)."""
    if fcntl is None:
        return None
    try:
        fds = _lock_host(getattr(fcntl, mode), _deadline(started, timeout_s), directory)
    except OSError as error:
        _warn(f"cannot lock {lock_path('measure', directory)} ({error})")
        return None
    if fds is None:
        _warn(timed_out)
    return fds


@contextmanager
def host_busy(timeout_s: float | None = BUSY_TIMEOUT_S, directory: Path | None = None) -> Iterator[Hold]:
    """Mark the host busy (training, evaluating) for one short section, e.g. one optimiser step.

    Any number of sections run at once; a measurement waits until the running ones end, and new ones
    wait until it is done. Threads of one process share one hold. Inside a measurement of the same
    thread a section passes at once: the host is already this thread's alone.
    """
    if _THREAD.measuring > 0:
        yield Hold(held=True, waited_s=0.0)
        return
    with _STATE.busy_mutex:
        if _STATE.busy_count == 0:
            started = time.monotonic()
            fds = _try_lock("LOCK_SH", started, timeout_s, directory,
                            f"a measurement held the host for more than {timeout_s} s")
            _STATE.busy_fds = fds
            _STATE.busy_hold = Hold(held=fds is not None, waited_s=time.monotonic() - started)
        _STATE.busy_count += 1
        hold = _STATE.busy_hold
    _THREAD.sections += 1
    try:
        yield hold
    finally:
        _THREAD.sections -= 1
        with _STATE.busy_mutex:
            _STATE.busy_count -= 1
            if _STATE.busy_count == 0 and _STATE.busy_fds is not None:
                _unlock_host(_STATE.busy_fds)
                _STATE.busy_fds = None
