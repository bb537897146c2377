"""Search efficiency on a frozen table of real sub-network evaluations (issue 4, item 6): hypervolume
regret against the number of trials for every searcher, with MO-ASHA where the table has a fidelity.

    nice .venv/bin/python benchmarks/search_efficiency.py --seeds 10
    nice .venv/bin/python benchmarks/search_efficiency.py --quick          # 3 seeds, fewer searchers

The table (`benchmarks/make_subnet_table.py`: every member of a coarse SMALL space of MiniLM-L6,
scored on the shared weights of one trained super-network) is replayed in this process, as the
`tabular` trainer replays it in a study: a loop of suggest / complete with a simulated pool of
`--workers` workers, so asynchronous searchers see pending trials. A trial costs one unit of
time; with MO-ASHA its first step (accuracy on a quarter of the validation data) costs a quarter
and a trial stopped there costs only that, so for the MO-ASHA rows "trials" counts full
evaluations' worth of time, and only trials that ran to the end count towards their front.
Objectives: accuracy (max) and parameters (min), reference point (accuracy 0.5, parameters 1.1 x
the full model's). Regret = (HV of the table's true front - HV found) / HV of the true front.
The Ax searcher runs synchronously (background=False), so every run is repeatable from its seed.
The target: BO reaches random search's 100-trial hypervolume (medians over seeds) within 30 trials.
"""
from __future__ import annotations

import argparse
import heapq
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import registry
from orchestrator.objectives import Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.schedulers.base import Decision, Scheduler
from orchestrator.searchers.base import Finished, Searcher
from search_spaces.pruning import SmallSpace
from trainers.tabular import Table, fidelities, load_table

TABLE = Path(__file__).parent / "data" / "subnet_table_minilm_movie_reviews.csv"
RESULTS = Path(__file__).parent / "results" / "search_efficiency.json"
CHECKPOINTS = (10, 20, 30, 50, 100)
BASELINE, BO, TARGET_TRIALS = "random", "ax_mobo", 30
#: (label, searcher, scheduler) in the order the table prints them.
RUNS = (("random", "random", None), ("ax_mobo", "ax_mobo", None), ("local", "local", None), ("morea", "morea", None),
        ("nsga2", "nsga2", None), ("random+moasha", "random", "moasha"), ("ax_mobo+moasha", "ax_mobo", "moasha"))
QUICK = ("random", "ax_mobo", "morea", "random+moasha")
#: population sizes that evolve within a 100-trial budget; the Ax searcher in the caller's thread.
SEARCHER_OPTIONS: dict[str, dict[str, Any]] = {"ax_mobo": {"background": False}, "morea": {"population_size": 20, "sample_size": 5},
                                               "nsga2": {"population": 20}}
MOASHA = {"fidelity": "step", "min_fidelity": 1, "max_fidelity": 2, "reduction_factor": 3}
#: the first step's share of a trial's time (a quarter of the validation batches).
LOW_COST = 0.25


@dataclass
class Replay:
    """One search: the full-fidelity points in completion order, with the time spent when each came."""

    spent: list[float] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    suggest_seconds: list[float] = field(default_factory=list)
    trials: int = 0


def objectives(frame: pd.DataFrame) -> Objectives:
    return Objectives((Objective("accuracy", "max", ref=0.5), Objective("params", "min", ref=1.1 * float(frame["params"].max()))))


def suggest(searcher: Searcher, trial_id: str, seconds: list[float]) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    config = searcher.suggest(trial_id)
    while config is None:  # a searcher computing off the caller's thread
        time.sleep(0.01)
        config = searcher.suggest(trial_id)
    seconds.append(time.perf_counter() - t0)
    return None if isinstance(config, Finished) else config


def replay(table: Table, searcher: Searcher, scheduler: Scheduler | None, objs: Objectives, budget: float, workers: int) -> Replay:
    """Run until `budget` units of trial time are spent, keeping `workers` trials in flight."""
    out, events, clock, total = Replay(), [], 0.0, 0.0
    running: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    while total < budget:
        while len(running) < workers:
            trial_id = f"t{out.trials}"
            config = suggest(searcher, trial_id, out.suggest_seconds)
            if config is None:
                break
            out.trials += 1
            running[trial_id] = fidelities(table.lookup(config))
            if scheduler is not None:
                scheduler.on_trial_add(trial_id, config)
            # (finish time, start order, trial, step): without a scheduler a trial is one step of the whole cost.
            heapq.heappush(events, (clock + (LOW_COST if scheduler else 1.0), out.trials, trial_id, 1 if scheduler else 2))
        if not events:
            break
        clock, order, trial_id, step = heapq.heappop(events)
        low, full = running[trial_id]
        metrics = {**(low if step == 1 else full), "step": step}
        total += LOW_COST if step == 1 else (1.0 - LOW_COST if scheduler else 1.0)
        searcher.on_trial_result(trial_id, metrics)
        decision = scheduler.on_trial_result(trial_id, metrics) if scheduler else Decision.CONTINUE
        if step == 1 and decision is Decision.CONTINUE:
            heapq.heappush(events, (clock + 1.0 - LOW_COST, order, trial_id, 2))
            continue
        # Stopped after its first step, or finished: the searcher learns from the last result, as in a study.
        del running[trial_id]
        if scheduler is not None:
            scheduler.on_trial_complete(trial_id, metrics)
        searcher.on_trial_complete(trial_id, metrics)
        if step == 2:
            out.spent.append(total)
            out.points.append(objs.to_minimise(metrics).tolist())
    close = getattr(searcher, "close", None)
    if callable(close):
        close()
    return out


def hv_curve(run: Replay, ref: np.ndarray, budget: int) -> np.ndarray:
    """Hypervolume of the full-fidelity points found by each whole unit of time 1..budget."""
    spent, points = np.array(run.spent), np.array(run.points).reshape(-1, len(ref))
    return np.array([hypervolume(points[spent <= t + 1e-9], ref) for t in range(1, budget + 1)])


def search(searcher_name: str, scheduler_name: str | None, table: Table, space: SmallSpace,
           objs: Objectives, seed: int, budget: int, workers: int) -> Replay:
    searcher = registry.searchers.load(searcher_name)(space, objs, (), seed, **SEARCHER_OPTIONS.get(searcher_name, {}))
    scheduler = registry.schedulers.load(scheduler_name)(objs, seed, **MOASHA) if scheduler_name else None
    return replay(table, searcher, scheduler, objs, budget, workers)


def first_reaching(curve: np.ndarray, level: float) -> int | None:
    """The first trial count (1-based) at which `curve` reaches `level`."""
    hits = np.nonzero(curve >= level - 1e-12)[0]
    return int(hits[0]) + 1 if len(hits) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (3 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"3 seeds (unless --seeds is given) and only {', '.join(QUICK)}")
    parser.add_argument("--runs", default=None, help="comma-separated labels to run (default: all)")
    parser.add_argument("--budget", type=int, default=100, help="trials (full evaluations' worth of time)")
    parser.add_argument("--bo-budget", type=int, default=None,
                        help="trials for the Ax runs (default: --budget; 50 with --quick): enough to check the target")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.seeds = args.seeds or (3 if args.quick else 10)
    bo_budget = min(args.budget, args.bo_budget or (50 if args.quick else args.budget))
    wanted = args.runs.split(",") if args.runs else (list(QUICK) if args.quick else [r[0] for r in RUNS])
    unknown = [w for w in wanted if w not in {r[0] for r in RUNS}]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r}; choose from {', '.join(r[0] for r in RUNS)}")

    sidecar = json.loads(args.table.with_suffix(".json").read_text())
    space = SmallSpace(**sidecar["space"]["options"])
    frame = pd.read_csv(args.table)
    table, objs = load_table(args.table, space), objectives(frame)
    ref = objs.ref_point()
    assert ref is not None
    true_hv = hypervolume(objs.matrix(frame.to_dict("records")), ref)
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    print(f"# {args.table.name}: {len(frame)} sub-networks, {args.seeds} seeds, {args.workers} workers, "
          f"{args.budget} trials; reference (accuracy {ref[0] * -1:.2f}, params {ref[1] / 1e6:.2f}M); true front HV {true_hv:.4g}")
    results: dict[str, Any] = {}
    for label, searcher_name, scheduler_name in RUNS:
        if label not in wanted:
            continue
        curves, seconds, trials, t0 = [], [], [], time.perf_counter()
        budget = bo_budget if searcher_name == BO else args.budget
        for seed in range(args.seeds):
            run = search(searcher_name, scheduler_name, table, space, objs, seed, budget, args.workers)
            curves.append(hv_curve(run, ref, budget))
            seconds.extend(run.suggest_seconds)
            trials.append(run.trials)
        hv = np.array(curves)
        results[label] = {"hv": hv.tolist(), "regret": ((true_hv - hv) / true_hv).tolist(), "trials_started": trials,
                          "suggest_seconds_median": float(np.median(seconds)), "wall_seconds": time.perf_counter() - t0}
        print(f"# {label}: {time.perf_counter() - t0:.0f}s", flush=True)

    print(f"\nmedian hypervolume regret [IQR] after N trials ({args.seeds} seeds); lower is better")
    print(f"{'searcher':<16}" + "".join(f"{'@' + str(c):>19}" for c in checkpoints) + f"{'s/suggest':>11}{'started':>9}")
    for label, r in results.items():
        regret = np.array(r["regret"])
        cells = "".join(f"{np.median(regret[:, c - 1]):>8.4f} [{np.percentile(regret[:, c - 1], 25):.3f}-{np.percentile(regret[:, c - 1], 75):.3f}]"
                        if c <= regret.shape[1] else f"{'-':>19}" for c in checkpoints)
        print(f"{label:<16}{cells}{r['suggest_seconds_median']:>11.3f}{np.median(r['trials_started']):>9.0f}")

    target: dict[str, Any] = {}
    if BASELINE in results:
        level = float(np.median(np.array(results[BASELINE]["hv"])[:, -1]))
        print(f"\nrandom search's median HV after {args.budget} trials: {level:.4g} (regret {(true_hv - level) / true_hv:.4f})")
        for label in (BO, f"{BO}+moasha", *[k for k in results if k not in (BO, f"{BO}+moasha", BASELINE)]):
            if label in results:
                curve = np.median(np.array(results[label]["hv"]), axis=0)
                k = first_reaching(curve, level)
                target[label] = k
                verdict = "" if label != BO else f"  (target <= {TARGET_TRIALS}: {'met' if k is not None and k <= TARGET_TRIALS else 'not met'})"
                print(f"  {label:<16} reaches it at trial {k if k is not None else f'> {len(curve)}'}{verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "table": str(args.table), "table_info": sidecar, "seeds": args.seeds, "workers": args.workers, "budget": args.budget,
        "reference": {"accuracy": float(-ref[0]), "params": float(ref[1])}, "true_hv": true_hv,
        "searcher_options": SEARCHER_OPTIONS, "moasha": MOASHA, "low_cost": LOW_COST,
        "trials_to_random_hv": {"random_hv": level if BASELINE in results else None, **target}, "runs": results,
    }) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
