"""Orchestration overhead of lmnas against plain Ray Tune, measured in one run (issue 4, item 6).

    nice .venv/bin/python benchmarks/overhead.py                    # full: 40 zero-cost trials, 2 + 6 trials of 30 s
    .venv/bin/python benchmarks/overhead.py --quick                 # a smoke run: 10 trials, 2 + 4 trials of 5 s

1. Throughput: trials per second for a zero-cost trainable. Ours is a whole `run_study` (random
   searcher, synthetic trainer with no work, results written atomically after every event)
   against plain Ray Tune running a function trainable that reports once, with its built-in
   random search over the same space. Same Ray session, same concurrency.
2. Overhead on long trials: studies of 2 and of 6 trials of `--trial-seconds` each, two at a time.
   The whole-study overhead is wall time / ideal wall time - 1, where the ideal is the trials' own
   sleeping time laid out on the workers; it includes the fixed cost of starting and closing a study
   (the Tuner, the trial actors, the final summary), which a longer study spreads thinner. The
   per-trial overhead is the marginal one: the extra wall time of the 6-trial study over the
   2-trial one, against the extra ideal time. Target: at most 5 % for 30-second trials.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import orchestrator  # noqa: F401  first: sets Ray's loopback environment before Ray is imported
import ray
from ray import tune

from orchestrator.run import run_study
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
    parser.add_argument("--long-trials", default="2,6", help="two study sizes, for the marginal per-trial cost")
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()

    if args.quick:
        args.zero_cost_trials, args.trial_seconds, args.long_trials = 10, 5.0, "2,4"

    ray.init(address="local", num_cpus=args.concurrent, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            storage = Path(tmp)
            # Warm both paths once (worker start-up, imports), outside the clock.
            our_study(storage, "warm-ours", 2, 0.0, args.concurrent)
            plain_tune(storage, "warm-plain", 2, 0.0, args.concurrent)

            n = args.zero_cost_trials
            ours_fast = our_study(storage, "fast-ours", n, 0.0, args.concurrent)
            plain_fast = plain_tune(storage, "fast-plain", n, 0.0, args.concurrent)

            s = args.trial_seconds
            sizes = [int(k) for k in args.long_trials.split(",")]
            ideal = {k: math.ceil(k / args.concurrent) * s for k in sizes}
            ours_long = {k: our_study(storage, f"long-ours-{k}", k, s, args.concurrent) for k in sizes}
            plain_long = {k: plain_tune(storage, f"long-plain-{k}", k, s, args.concurrent) for k in sizes}
    finally:
        ray.shutdown()

    print(f"\nzero-cost trials: {n}, {args.concurrent} at a time")
    print(f"{'':24}{'trials/s':>10}{'wall s':>10}")
    print(f"{'plain Ray Tune':24}{n / plain_fast:>10.2f}{plain_fast:>10.1f}")
    print(f"{'lmnas':24}{n / ours_fast:>10.2f}{ours_fast:>10.1f}")
    print(f"lmnas / plain Tune throughput: {plain_fast / ours_fast:.2f}x")
    small, large = sizes
    print(f"\ntrials of {s:g} s, {args.concurrent} at a time; whole-study overhead per study size, and per trial")
    print(f"{'':18}" + "".join(f"{f'{k} trials':>16}" for k in sizes) + f"{'per trial':>12}")

    def row(name: str, walls: dict[int, float]) -> float:
        marginal = (walls[large] - walls[small]) / (ideal[large] - ideal[small]) - 1
        cells = "".join(f"{f'{walls[k]:.1f} s {walls[k] / ideal[k] - 1:+.1%}':>16}" for k in sizes)
        print(f"{name:18}{cells}{marginal:>12.1%}")
        return marginal

    row("plain Ray Tune", plain_long)
    ours = row("lmnas", ours_long)
    print(f"lmnas per-trial overhead on {s:g}-s trials: {ours:.1%} (target <= 5 %); plain Tune's is the baseline above")

if __name__ == "__main__":
    main()
