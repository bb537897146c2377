"""Orchestration overhead of lmnas against plain Ray Tune, measured in one run (issue 4, item 6).

    nice .venv/bin/python benchmarks/overhead.py                    # full: 40 zero-cost trials, 4 x 30 s trials
    .venv/bin/python benchmarks/overhead.py --quick                 # a smoke run: 10 trials, 4 x 5 s trials

1. Throughput: trials per second for a zero-cost trainable. Ours is a whole `run_study` (random
   searcher, synthetic trainer with no work, results written atomically after every event)
   against plain Ray Tune running a function trainable that reports once, with its built-in
   random search over the same space. Same Ray session, same concurrency.
2. Per-trial overhead on long trials: `--long-trials` trials of `--trial-seconds` each, two at a
   time; overhead = wall time / ideal wall time - 1, where the ideal is the trials' own sleeping
   time laid out on the workers. Target: at most 5 % for 30-second trials.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import ray
from ray import tune

from orchestrator.run import LOOPBACK_ENV, QUIET_TUNE_ENV, run_study
from orchestrator.study import parse_study


def our_study(storage: Path, name: str, trials: int, seconds: float, concurrent: int) -> float:
    """Wall seconds of one lmnas study whose trials each sleep `seconds`."""
    study = parse_study({
        "name": name,
        "storage": str(storage),
        "search_space": {"name": "synthetic", "options": {"num_dims": 4}},
        "trainer": {"kind": "synthetic", "options": {"steps": 1, "step_seconds": seconds}},
        "objectives": [{"metric": "f1"}, {"metric": "f2"}],
        "budget": {"num_trials": trials, "max_concurrent": concurrent},
        "resources": {"cpu": 1},
    })
    began = time.perf_counter()
    outcome = run_study(study, progress=False)
    wall = time.perf_counter() - began
    done = outcome.summary.counts["completed"]
    if done != trials:
        raise RuntimeError(f"lmnas finished {done} of {trials} trials")
    return wall


def plain_tune(storage: Path, name: str, trials: int, seconds: float, concurrent: int) -> float:
    """Wall seconds of the same work as a plain Ray Tune run (built-in random search)."""

    def trainable(config: dict) -> None:
        if seconds:
            time.sleep(seconds)
        tune.report({"f1": config["x0"], "f2": 1 - config["x0"]})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={f"x{i}": tune.uniform(0, 1) for i in range(4)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
    )
    began = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - began
    if grid.num_errors or len(grid) != trials:
        raise RuntimeError(f"plain Tune finished {len(grid) - grid.num_errors} of {trials} trials")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--zero-cost-trials", type=int, default=40)
    parser.add_argument("--long-trials", type=int, default=4)
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    import os

    if args.quick:
        args.zero_cost_trials, args.trial_seconds = 10, 5.0

    os.environ.update({**LOOPBACK_ENV, **QUIET_TUNE_ENV})
    ray.init(num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            storage = Path(tmp)
            # Warm both paths once (worker start-up, imports), outside the clock.
            our_study(storage, "warm-ours", 2, 0.0, args.concurrent)
            plain_tune(storage, "warm-plain", 2, 0.0, args.concurrent)

            n = args.zero_cost_trials
            ours_fast = our_study(storage, "fast-ours", n, 0.0, args.concurrent)
            plain_fast = plain_tune(storage, "fast-plain", n, 0.0, args.concurrent)

            k, s = args.long_trials, args.trial_seconds
            ideal = math.ceil(k / args.concurrent) * s
            ours_long = our_study(storage, "long-ours", k, s, args.concurrent)
            plain_long = plain_tune(storage, "long-plain", k, s, args.concurrent)
    finally:
        ray.shutdown()

    print(f"\nzero-cost trials: {n}, {args.concurrent} at a time")
    print(f"{'':24}{'trials/s':>10}{'wall s':>10}")
    print(f"{'plain Ray Tune':24}{n / plain_fast:>10.2f}{plain_fast:>10.1f}")
    print(f"{'lmnas':24}{n / ours_fast:>10.2f}{ours_fast:>10.1f}")
    print(f"lmnas / plain Tune throughput: {plain_fast / ours_fast:.2f}x")
    print(f"\n{k} trials of {s:g} s, {args.concurrent} at a time (ideal wall {ideal:.0f} s)")
    print(f"{'':24}{'wall s':>10}{'overhead':>10}")
    print(f"{'plain Ray Tune':24}{plain_long:>10.1f}{plain_long / ideal - 1:>10.1%}")
    print(f"{'lmnas':24}{ours_long:>10.1f}{ours_long / ideal - 1:>10.1%}")
    print(f"lmnas overhead on {s:g}-s trials: {ours_long / ideal - 1:.1%} of the ideal wall time (target <= 5 %), "
          f"{(ours_long - ideal) * args.concurrent / k:.2f} s per trial")


if __name__ == "__main__":
    main()
