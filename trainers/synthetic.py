"""A synthetic trainer: classic multi-objective test problems (ZDT1-3, DTLZ2) over the synthetic space.

It stands in for real training in orchestration tests and benchmarks: known Pareto fronts, an
optional multi-step fidelity whose early values are biased but correlated with the final ones,
a configurable duration per step and injected failures. References: Zitzler, Deb & Thiele (2000),
"Comparison of multiobjective evolutionary algorithms"; Deb et al. (2002), "Scalable test problems
for evolutionary multiobjective optimization".
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from search_spaces.base import SearchSpace
from search_spaces.synthetic import SyntheticSpace
from trainers.options import build_options
from trainers.contract import Metrics, Report, TrainerError, TrialContext


@dataclass(frozen=True)
class SyntheticOptions:
    problem: Literal["zdt1", "zdt2", "zdt3", "dtlz2"] = "zdt1"
    num_objectives: int = 2
    steps: int = 1
    step_seconds: float = 0.0
    #: probability that a trial raises at a random step (decided per configuration, so reruns agree).
    fail_probability: float = 0.0
    #: a trial whose x0 lies below this fails at its first step (a deterministic failure region).
    fail_below_x0: float = -1.0
    #: how an injected failure shows: an exception, the worker process dying, or a hang.
    failure_mode: Literal["raise", "exit", "hang"] = "raise"
    #: print one line per step (a trainer's own output, as real trainers print progress).
    print_steps: bool = False
    #: report each step as a checkpoint, and continue after the last one when the trial is rerun.
    checkpoint: bool = False
    #: fail at this step on the trial's first run only (a lost node, say); a retry goes past it.
    fail_first_run_at_step: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"option 'steps' must be >= 1, got {self.steps}")
        if self.step_seconds < 0:
            raise ValueError(f"option 'step_seconds' must be >= 0, got {self.step_seconds}")
        if not 0.0 <= self.fail_probability <= 1.0:
            raise ValueError(f"option 'fail_probability' must be in [0, 1], got {self.fail_probability}")
        if self.problem != "dtlz2" and self.num_objectives != 2:
            raise ValueError(f"option 'num_objectives' must be 2 for {self.problem}; only dtlz2 scales")
        if not 2 <= self.num_objectives <= 8:
            raise ValueError(f"option 'num_objectives' must be in 2..8, got {self.num_objectives}")


OPTIONS = SyntheticOptions


def METRICS(opts: SyntheticOptions, space: SearchSpace) -> tuple[str, ...]:  # noqa: N802  the contract's name
    """f1 .. fm (m objectives of the problem) and the fidelity `step`."""
    return (*(f"f{i + 1}" for i in range(opts.num_objectives)), "step")


class InjectedFailure(RuntimeError):
    """The failure the synthetic trainer was asked to inject."""


def objectives(problem: str, x: np.ndarray, num_objectives: int = 2) -> np.ndarray:
    """The true objective values (all minimised) of a point x in [0, 1]^n."""
    n = len(x)
    if problem in ("zdt1", "zdt2", "zdt3"):
        f1 = x[0]
        g = 1.0 + 9.0 * float(np.sum(x[1:])) / (n - 1)
        if problem == "zdt1":
            h = 1.0 - math.sqrt(f1 / g)
        elif problem == "zdt2":
            h = 1.0 - (f1 / g) ** 2
        else:
            h = 1.0 - math.sqrt(f1 / g) - (f1 / g) * math.sin(10 * math.pi * f1)
        return np.array([f1, g * h])
    if problem == "dtlz2":
        m = num_objectives
        if n < m:
            raise TrainerError(f"dtlz2 with {m} objectives needs num_dims >= {m}, the space has {n}")
        g = float(np.sum((x[m - 1 :] - 0.5) ** 2))
        f = np.full(m, 1.0 + g)
        for i in range(m):
            f[i] *= np.prod(np.cos(x[: m - 1 - i] * math.pi / 2))
            if i > 0:
                f[i] *= math.sin(x[m - 1 - i] * math.pi / 2)
        return f
    raise TrainerError(f"unknown problem {problem!r}; allowed: zdt1, zdt2, zdt3, dtlz2")


def config_rng(arch: dict, seed: int) -> np.random.Generator:
    """A generator seeded by the configuration, so a rerun of the same trial behaves the same."""
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def inject_failure(mode: str, message: str) -> None:
    if mode == "exit":
        # The worker dies as if killed or out of memory: no exception reaches anyone.
        os._exit(17)
    if mode == "hang":
        while True:
            time.sleep(3600)
    raise InjectedFailure(message)


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(SyntheticOptions, ctx.options)
    if not isinstance(ctx.space, SyntheticSpace):
        raise TrainerError(f"the synthetic trainer needs the 'synthetic' search space, got {ctx.space.name!r}")
    x = np.array(ctx.space.point(dict(ctx.arch)))
    final = objectives(opts.problem, x, opts.num_objectives)
    rng = config_rng(dict(ctx.arch), ctx.seed)
    # Low fidelities see the final values plus a per-configuration bias that shrinks to zero.
    bias = np.abs(rng.normal(0.0, 0.3, size=final.shape))
    fail_step = int(rng.integers(1, opts.steps + 1)) if rng.random() < opts.fail_probability else None
    if x[0] < opts.fail_below_x0:
        fail_step = 1
    if opts.fail_first_run_at_step is not None and ctx.restore_dir is None:
        fail_step = opts.fail_first_run_at_step
    done = int((ctx.restore_dir / "step").read_text()) if ctx.restore_dir is not None else 0
    metrics: dict[str, float] = {}
    for step in range(done + 1, opts.steps + 1):
        if opts.step_seconds:
            time.sleep(opts.step_seconds)
        if step == fail_step:
            inject_failure(opts.failure_mode, f"injected failure at step {step} for trial {ctx.trial_id}")
        values = final + bias * (opts.steps - step) / opts.steps
        metrics = {f"f{i + 1}": float(v) for i, v in enumerate(values)}
        metrics["step"] = float(step)
        if opts.print_steps:
            print(f"trial {ctx.trial_id} step {step}/{opts.steps}", flush=True)
        if opts.checkpoint and ctx.trial_dir is not None:
            state = ctx.trial_dir / "state"
            state.mkdir(parents=True, exist_ok=True)
            (state / "step").write_text(str(step))
            report(metrics, checkpoint=state)
        else:
            report(metrics)
    return metrics
