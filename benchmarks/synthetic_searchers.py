"""Searchers and MO-ASHA on the synthetic problems, without Ray: hypervolume against the number
of trials (and of training steps), and the time each suggestion takes.

    .venv/bin/python benchmarks/synthetic_searchers.py --problem zdt1 --trials 100 --seeds 10

Part 1 runs every registered searcher (or --searchers) with `--workers` trials in flight.
Part 2 gives random search the same budget of training steps with FIFO and with MO-ASHA on the
synthetic trainer's multi-step fidelity, and counts only trials that reached the last step.
"""
from __future__ import annotations

import argparse
import time
from collections import deque

import numpy as np

from orchestrator import registry
from orchestrator.objectives import Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.schedulers.base import Decision, Scheduler
from search_spaces.synthetic import SyntheticSpace
from trainers import synthetic
from trainers.contract import TrialContext, collect_reports

REF = {"zdt1": [1.0, 10.0], "zdt2": [1.0, 10.0], "zdt3": [1.0, 10.0], "dtlz2": [2.0, 2.0]}
OPTIONS = {"local": {}, "morea": {"population_size": 20, "sample_size": 5}, "nsga2": {"population": 20}}


#: the synthetic trainer's two objectives, both minimised.
OBJECTIVES = Objectives((Objective("f1"), Objective("f2")))


def search(name: str, problem: str, trials: int, workers: int, seed: int, dims: int) -> tuple[np.ndarray, list[float]]:
    """Minimise-form points in completion order, and seconds per suggestion."""
    space = SyntheticSpace(num_dims=dims)
    searcher = registry.searchers.load(name)(space, OBJECTIVES, (), seed, **OPTIONS.get(name, {}))
    points, seconds = [], []
    running: deque[tuple[str, dict]] = deque()
    for i in range(trials):
        t0 = time.perf_counter()
        config = searcher.suggest(f"t{i}")
        while config is None:  # a searcher computing off the caller's thread
            time.sleep(0.01)
            config = searcher.suggest(f"t{i}")
        seconds.append(time.perf_counter() - t0)
        running.append((f"t{i}", config))
        while len(running) >= workers or (i == trials - 1 and running):
            trial_id, done = running.popleft()
            f = synthetic.objectives(problem, np.array(space.point(done)))
            points.append(f)
            searcher.on_trial_complete(trial_id, {"f1": float(f[0]), "f2": float(f[1])})
    close = getattr(searcher, "close", None)
    if callable(close):
        close()
    return np.array(points), seconds


def step_budget_run(scheduler: Scheduler, problem: str, budget: int, workers: int, seed: int, dims: int, steps: int) -> np.ndarray:
    """Random configurations on `workers` workers until `budget` steps were spent; one step per
    worker per tick. Returns the final points of the trials that ran all `steps` steps."""
    space = SyntheticSpace(num_dims=dims)
    rng = np.random.default_rng(seed)
    running: dict[str, list[dict[str, float]]] = {}
    finished, spent, n = [], 0, 0
    while spent < budget:
        while len(running) < workers:
            seen, report = collect_reports()
            ctx = TrialContext(f"t{n}", space.sample(rng), space, {"problem": problem, "steps": steps}, seed=seed)
            synthetic.train(ctx, report)
            running[ctx.trial_id] = seen
            scheduler.on_trial_add(ctx.trial_id, dict(ctx.arch))
            n += 1
        for trial_id in list(running):
            metrics = running[trial_id].pop(0)
            spent += 1
            decision = scheduler.on_trial_result(trial_id, metrics)
            if not running[trial_id]:
                finished.append([metrics["f1"], metrics["f2"]])
            if decision is Decision.STOP or not running[trial_id]:
                scheduler.on_trial_complete(trial_id, metrics)
                del running[trial_id]
    return np.array(finished).reshape(-1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="zdt1", choices=sorted(REF))
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--dims", type=int, default=6)
    parser.add_argument("--searchers", nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=9, help="fidelity steps per trial in part 2")
    args = parser.parse_args()
    ref = np.array(REF[args.problem])
    checkpoints = [c for c in (10, 25, 50, 100, 200, 400) if c <= args.trials]
    names = args.searchers or registry.searchers.names()

    print(f"# {args.problem}, {args.dims} dims, {args.workers} workers, {args.seeds} seeds, reference point {ref.tolist()}")
    print("searcher  " + "  ".join(f"HV@{c:<4}" for c in checkpoints) + "  (median [IQR])  ms/suggest (median)")
    for name in names:
        hv = np.zeros((args.seeds, len(checkpoints)))
        ms = []
        for seed in range(args.seeds):
            points, seconds = search(name, args.problem, args.trials, args.workers, seed, args.dims)
            hv[seed] = [hypervolume(points[:c], ref) for c in checkpoints]
            ms.extend(1000 * s for s in seconds)
        cells = [
            f"{np.median(hv[:, j]):.3f} [{np.percentile(hv[:, j], 25):.2f}-{np.percentile(hv[:, j], 75):.2f}]"
            for j in range(len(checkpoints))
        ]
        print(f"{name:<9} " + "  ".join(cells) + f"  {np.median(ms):.2f}")

    budget = args.trials * args.steps
    print(f"\n# random search, {budget} training steps ({args.trials} full trials of {args.steps} steps), "
          "hypervolume of the trials that ran every step")
    moasha = {"fidelity": "step", "min_fidelity": 1, "max_fidelity": args.steps, "reduction_factor": 3}
    for label, name, options in (("fifo", "fifo", {}), ("moasha", "moasha", moasha),
                                 ("moasha-eps", "moasha", moasha | {"tie_break": "epsilon_net"})):
        hvs, full = [], []
        for seed in range(args.seeds):
            scheduler = registry.schedulers.load(name)(OBJECTIVES, seed, **options)
            finished = step_budget_run(scheduler, args.problem, budget, args.workers, seed, args.dims, args.steps)
            hvs.append(hypervolume(finished, ref))
            full.append(len(finished))
        print(f"{label:<10} HV {np.median(hvs):.3f} [{np.percentile(hvs, 25):.2f}-{np.percentile(hvs, 75):.2f}]"
              f"  full trials {np.median(full):.0f}")


if __name__ == "__main__":
    main()
