"""Latency of a model's forward pass, measured on the device the model is on.

AutoDistill (autodistill.txt, §3.4) measures each candidate on the target hardware over several
forward runs instead of trusting proxies (summed operator times, FLOPs, parameters), because the
hardware and software stack decide latency. The structural-pruning paper (Appendix F) likewise
optimises latency measured on the target GPU. Here: the inputs are built once, warm-up forwards
absorb one-off costs (allocations, kernel selection), each timed forward is synchronised on CUDA,
the torch thread count is fixed while measuring and restored after, the garbage collector is paused
while timing, and the result carries spread (coefficient of variation) and the hardware's name.
Warm-up and timed forwards run under the host-wide measurement lock (`host_lock.py`), so trials
sharing a machine do not time at once; the wait for it is reported and never timed.

The clock: on a CPU with one torch thread, each forward is timed by the thread's own CPU clock
(`time.thread_time`), which stops while the operating system runs other processes on that core:
the lock keeps other trials from *timing* at once, not from training, and on a shared machine their
training steals the core mid-forward. Measured with three busy processes on two cores, a 4-layer
BERT at batch 1 x 128 tokens timed 9.5 ms (CV 0.03) quiet; under load the wall clock read 18.7 ms
(CV 0.15) and the thread clock 10.2 ms (CV 0.05). With several threads (whose work the calling
thread's clock does not see) or on CUDA (asynchronous kernels), the wall clock is used. `clock`
forces either; the one used is reported as `latency_clock`.

The forwards run in the trial's precision (`trainers/precision.py`: fp32, or autocast to bf16 / fp16),
the one the model will be deployed in, and the latency is reported with it (`precision`).
"""
from __future__ import annotations

import gc
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from trainers.efficiency.hardware import hardware_label
from trainers.efficiency.host_lock import MEASURE_TIMEOUT_S, Hold, exclusive_measurement
from trainers.efficiency.inputs import MakeInputs, call_model, model_device, token_inputs
from trainers.options import check_precision
from trainers.precision import autocast


#: the clocks a forward can be timed by: seconds as a float.
TIMERS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}
CLOCKS = ("auto", *TIMERS)


def forwards_per_sample(one_ms: float, min_sample_ms: float, most: int = 1000) -> int:
    """Forwards timed together per sample, so a sample lasts `min_sample_ms` (as timeit's autorange):
    a forward of a fraction of a millisecond is otherwise timed with the clock's and the
    interpreter's jitter as a large share of it (1 without a warm-up to size it)."""
    if one_ms <= 0 or min_sample_ms <= 0:
        return 1
    return max(1, min(most, math.ceil(min_sample_ms / one_ms)))


def choose_clock(requested: str, device: torch.device, threads: int) -> str:
    """The thread's CPU clock only where it sees all of a forward's work: one thread on a CPU."""
    if requested != "auto":
        return requested
    return "thread" if device.type == "cpu" and threads == 1 else "wall"


@dataclass(frozen=True)
class LatencyOptions:
    """How to measure. `threads=None` keeps the process's current torch thread count.

    `budget_s` bounds the whole measurement (warm-ups included): timed repeats stop once it is
    spent, but never before `min_repeats` of them, so a slow model still gets a median and a spread;
    the wait for the host lock is not part of the budget.
    `exclusive` holds the host-wide measurement lock while timing (see `host_lock.py`);
    `lock_timeout_s` bounds the wait for it (None: wait forever), after which it measures anyway.
    `clock`: "auto" times by the thread's CPU clock on a CPU with one thread and by the wall clock
    otherwise (see the module's docstring); "wall" or "thread" force one.
    `min_sample_ms`: a forward faster than this is timed in runs of several back to back, each
    sample their mean (0: one forward per sample); the last warm-up sizes the run.
    """

    batch: int = 1
    seq_len: int = 128
    warmup: int = 3
    repeats: int = 20
    threads: int | None = 1
    budget_s: float | None = None
    min_repeats: int = 3
    exclusive: bool = True
    lock_timeout_s: float | None = MEASURE_TIMEOUT_S
    clock: Literal["auto", "wall", "thread"] = "auto"
    #: "fp32", or the 16-bit autocast the forwards run under ("bf16", "fp16").
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    min_sample_ms: float = 2.0

    def __post_init__(self) -> None:
        for name, low in (("batch", 1), ("seq_len", 1), ("warmup", 0), ("repeats", 1), ("min_repeats", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None (keep the current count), got {self.threads}")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f"budget_s must be > 0 or None (no budget), got {self.budget_s}")
        if self.lock_timeout_s is not None and self.lock_timeout_s < 0:
            raise ValueError(f"lock_timeout_s must be >= 0 or None (wait forever), got {self.lock_timeout_s}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        check_precision(self.precision)
        if self.min_sample_ms < 0:
            raise ValueError(f"min_sample_ms must be >= 0 (0: one forward per sample), got {self.min_sample_ms}")


@dataclass(frozen=True)
class Latency:
    """One latency measurement: statistics over `n` timed forwards, and where they ran."""

    median_ms: float
    mean_ms: float
    p90_ms: float
    #: standard deviation / mean of the timed forwards (0 for a single one).
    cv: float
    n: int
    batch: int
    seq_len: int
    threads: int
    device: str
    hardware: str
    #: whether the host-wide measurement lock was held while timing.
    exclusive: bool = False
    #: seconds spent waiting for that lock (not part of any timing).
    lock_wait_s: float = 0.0
    #: the clock the forwards were timed by: "wall" or "thread" (the thread's CPU time).
    clock: str = "wall"
    #: the arithmetic the forwards ran in: "fp32", "bf16" or "fp16".
    precision: str = "fp32"
    #: forwards timed back to back in each sample (see `LatencyOptions.min_sample_ms`).
    forwards_per_sample: int = 1

    def as_metrics(self) -> dict[str, float]:
        """The numeric part (the labels are in `report`)."""
        return {"latency_ms": self.median_ms, "latency_p90_ms": self.p90_ms, "latency_cv": self.cv}

    def report(self) -> dict[str, float | str]:
        """What a trainer reports of it: the numbers, the hardware, the clock and the precision."""
        return {**self.as_metrics(), "hardware": self.hardware, "latency_clock": self.clock,
                "precision": self.precision}


def summarise(times_ms: Sequence[float]) -> tuple[float, float, float, float]:
    """(median, mean, p90, coefficient of variation) of the timings; p90 interpolates linearly."""
    if not times_ms:
        raise ValueError("times_ms must hold at least one timing, got none")
    t = np.asarray(times_ms, dtype=float)
    mean = float(t.mean())
    cv = float(t.std(ddof=1) / mean) if len(t) > 1 and mean > 0 else 0.0
    return float(np.median(t)), mean, float(np.percentile(t, 90)), cv


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so wall-clock time covers the work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module, options: LatencyOptions = LatencyOptions(), make_inputs: MakeInputs | None = None
) -> Latency:
    """Time eval-mode forwards of `model` under `torch.inference_mode` on the model's device.

    Without `make_inputs` the model needs a Hugging Face-style `config.vocab_size`, and gets random
    token ids. The model's train/eval mode and the torch thread count are restored afterwards.
    With `options.exclusive` it first waits for the host-wide measurement lock (`host_lock.py`).
    """
    if make_inputs is None:
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if not isinstance(vocab_size, int):
            raise ValueError("make_inputs is required for a model without an integer config.vocab_size")
        make_inputs = token_inputs(vocab_size)
    device = model_device(model)
    inputs = make_inputs(options.batch, options.seq_len, device)
    previous_threads = torch.get_num_threads()
    was_training = model.training
    gc_was_enabled = gc.isenabled()
    times_ms: list[float] = []
    try:
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        threads = torch.get_num_threads()
        clock = choose_clock(options.clock, device, threads)
        timer = TIMERS[clock]
        model.eval()
        with host_lock(options) as hold, torch.inference_mode(), autocast(options.precision, device):
            # The budget starts once the host is ours: waiting is neither timed nor budgeted.
            start = time.perf_counter()
            one_ms = 0.0
            for _ in range(options.warmup):
                t0 = time.perf_counter()  # wall time sizes the runs: a sample's wall time is what the budget spends
                call_model(model, inputs)
                synchronize(device)
                one_ms = (time.perf_counter() - t0) * 1e3
            per_sample = forwards_per_sample(one_ms, options.min_sample_ms)
            gc.disable()
            min_n = min(options.min_repeats, options.repeats)
            for _ in range(options.repeats):
                if options.budget_s is not None and len(times_ms) >= min_n:
                    if time.perf_counter() - start >= options.budget_s:
                        break
                t0 = timer()
                for _ in range(per_sample):
                    call_model(model, inputs)
                synchronize(device)
                times_ms.append((timer() - t0) * 1e3 / per_sample)
    finally:
        if gc_was_enabled:
            gc.enable()
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    median, mean, p90, cv = summarise(times_ms)
    return Latency(
        median_ms=median,
        mean_ms=mean,
        p90_ms=p90,
        cv=cv,
        n=len(times_ms),
        batch=options.batch,
        seq_len=options.seq_len,
        threads=threads,
        device=str(device),
        hardware=hardware_label(device),
        exclusive=hold.held,
        lock_wait_s=hold.waited_s,
        clock=clock,
        precision=options.precision,
        forwards_per_sample=per_sample,
    )


def host_lock(options: LatencyOptions) -> AbstractContextManager[Hold]:
    """The host-wide measurement lock when `options.exclusive`, else a stand-in that holds nothing."""
    if options.exclusive:
        return exclusive_measurement(options.lock_timeout_s)
    return nullcontext(Hold(held=False, waited_s=0.0))
