"""Suggestion latency and search quality of the Ax searcher, and worker utilisation (issue 4).

    nice .venv/bin/python benchmarks/searcher_latency.py            # 20-40 minutes on 2 shared cores
    nice .venv/bin/python benchmarks/searcher_latency.py --quick    # a smoke run

Part 1, latency and hypervolume. Sequential BO on 6-dimensional ZDT1 (reference point
(1.1, 11), also given to Ax as objective thresholds): `ax_mobo` with our generation settings
against the same Ax client with Ax's default generation strategy, on the same seeds. The
suggestion time at n observations is the median of the suggestions made with n-1, n and n+1
observations over the seeds (80: the first seed only). "Ax default" runs single-threaded like
ours, so its hypervolume runs fit in the time; "Ax default, torch threads" then reloads the
default run's saved state at each n and times one suggestion with torch's default thread
count, the configuration of the timings quoted in the issue. CPU seconds are the process's.

Part 2, worker utilisation without Ray: a pool of 4 simulated workers whose trials are real
10-second sleeps (wall clock, not scaled), driven by one loop that polls every 5 ms like Tune's
driver; a worker whose trial ended while the driver was blocked inside `suggest` stays idle
until the driver returns. Utilisation = busy worker-seconds / (workers x makespan), background
mode against synchronous mode, same settings otherwise.

Targets: median suggestion time <= 3 s at 40 observations with >= 95 % of the default's
hypervolume; utilisation >= 90 %.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.objectives import Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.searchers.ax_mobo import AxMoboSearcher
from search_spaces.synthetic import SyntheticSpace
from trainers.synthetic import objectives

REF = np.array([1.1, 11.0])
OBJECTIVES = Objectives((Objective("f1", ref=float(REF[0])), Objective("f2", ref=float(REF[1]))))
POINTS = (10, 20, 40, 80)
RESULTS = Path(__file__).parent / "results" / "searcher_latency.json"


def zdt1(space: SyntheticSpace, config: dict[str, Any]) -> dict[str, float]:
    f = objectives("zdt1", np.array(space.point(config)))
    return {"f1": float(f[0]), "f2": float(f[1])}


def sequential(space: SyntheticSpace, generation: str, seed: int, budget: int, save_at: tuple[int, ...]) -> dict:
    """One trial at a time; per suggestion: observations before it, wall and CPU seconds."""
    searcher = AxMoboSearcher(space, OBJECTIVES, seed=seed, background=False, generation=generation)
    times, states, hv = [], {}, {}
    for i in range(budget):
        if i in save_at:
            states[i] = searcher.state_dict()
        wall, cpu = time.perf_counter(), time.process_time()
        config = searcher.suggest(f"t{i}")
        times.append((i, time.perf_counter() - wall, time.process_time() - cpu))
        assert isinstance(config, dict)
        searcher.on_trial_complete(f"t{i}", zdt1(space, config))
        if i + 1 in POINTS:
            points = np.array([v for _, _, v in searcher.history if v is not None])
            hv[i + 1] = hypervolume(points, REF)
    return {"times": times, "hv": hv, "states": states}


def median_at(runs: list[dict], n: int, column: int) -> float | None:
    values = [t[column] for run in runs for t in run["times"] if abs(t[0] - n) <= 1]
    return statistics.median(values) if values else None


def default_threads_latency(space: SyntheticSpace, state: dict, seed: int) -> float:
    """One suggestion from a saved Ax-default state with torch's own thread count."""
    searcher = AxMoboSearcher(space, OBJECTIVES, seed=seed, background=False, generation="ax_default", torch_threads=0)
    searcher.load_state_dict(state)
    wall = time.perf_counter()
    searcher.suggest("timed")
    return time.perf_counter() - wall


def utilisation(space: SyntheticSpace, background: bool, workers: int, trials: int, seconds: float) -> dict:
    searcher = AxMoboSearcher(space, OBJECTIVES, seed=0, background=background)
    running: dict[int, tuple[str, float]] = {}  # worker -> (trial id, end time)
    started = finished = 0
    blocked = 0.0
    t0 = time.monotonic()
    try:
        while finished < trials:
            now = time.monotonic()
            for w, (trial_id, end) in list(running.items()):
                if end <= now:
                    config = searcher.pending[trial_id]
                    searcher.on_trial_complete(trial_id, zdt1(space, config))
                    del running[w]
                    finished += 1
            for w in range(workers):
                if w not in running and started < trials:
                    ask = time.monotonic()
                    config = searcher.suggest(f"t{started}")
                    blocked = max(blocked, time.monotonic() - ask)
                    if isinstance(config, dict):
                        running[w] = (f"t{started}", time.monotonic() + seconds)
                        started += 1
            time.sleep(0.005)
    finally:
        searcher.close()
    makespan = time.monotonic() - t0
    return {"utilisation": trials * seconds / (workers * makespan), "makespan_s": makespan,
            "longest_suggest_s": blocked}


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", type=int, default=41, help="trials per seed (the first seed runs to 81)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="trials per utilisation run")
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 seed, 21 trials, 8 two-second trials")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.trials, args.trial_seconds = 1, 21, 8, 2.0
    space = SyntheticSpace(num_dims=6)
    long_budget = max(args.budget, 81) if not args.quick else args.budget
    default_threads = torch.get_num_threads()

    runs: dict[str, list[dict]] = {"lmnas": [], "ax_default": []}
    for generation in runs:
        for seed in range(args.seeds):
            budget = long_budget if seed == 0 else args.budget
            save_at = tuple(n for n in POINTS if n < budget) if generation == "ax_default" and seed == 0 else ()
            t = time.perf_counter()
            runs[generation].append(sequential(space, generation, seed, budget, save_at))
            print(f"{generation} seed {seed}: {budget} trials in {time.perf_counter() - t:.0f} s", flush=True)
    threaded = {n: default_threads_latency(space, state, 0) for n, state in runs["ax_default"][0]["states"].items()}

    rows = []
    for n in POINTS:
        ours, base = median_at(runs["lmnas"], n, 1), median_at(runs["ax_default"], n, 1)
        hv_ours = [r["hv"][n] for r in runs["lmnas"] if n in r["hv"]]
        hv_base = [r["hv"][n] for r in runs["ax_default"] if n in r["hv"]]
        rows.append({
            "observations": n, "ours_s": ours, "ours_cpu_s": median_at(runs["lmnas"], n, 2),
            "ax_default_s": base, "ax_default_threads_s": threaded.get(n),
            "hv_ours": float(np.mean(hv_ours)) if hv_ours else None,
            "hv_ax_default": float(np.mean(hv_base)) if hv_base else None, "seeds": len(hv_ours),
        })
    print(f"\nSuggestion time (median s) and hypervolume, 6-d ZDT1, ref {REF.tolist()}; "
          f"torch threads: ours 1, default {default_threads}")
    print(f"{'obs':>4} {'ours':>6} {'cpu':>6} {'ax 1thr':>8} {'ax thr':>8} {'speed-up':>9} "
          f"{'HV ours':>8} {'HV ax':>8} {'HV ratio':>9} {'seeds':>5}")
    for r in rows:
        slow = r["ax_default_threads_s"] or r["ax_default_s"]
        speed = slow / r["ours_s"] if slow and r["ours_s"] else None
        ratio = r["hv_ours"] / r["hv_ax_default"] if r["hv_ours"] and r["hv_ax_default"] else None
        print(f"{r['observations']:>4} {fmt(r['ours_s']):>6} {fmt(r['ours_cpu_s']):>6} {fmt(r['ax_default_s']):>8} "
              f"{fmt(r['ax_default_threads_s']):>8} {fmt(speed, '.1f'):>8}x {fmt(r['hv_ours'], '.3f'):>8} "
              f"{fmt(r['hv_ax_default'], '.3f'):>8} {fmt(ratio, '.3f'):>9} {r['seeds']:>5}")

    pool = {}
    for mode, background in (("background", True), ("synchronous", False)):
        pool[mode] = utilisation(space, background, args.workers, args.trials, args.trial_seconds)
        print(f"{mode}: {pool[mode]}", flush=True)
    print(f"\nWorker utilisation, {args.workers} workers, {args.trials} trials of {args.trial_seconds:g} s "
          "(real sleeps, wall clock)")
    print(f"{'mode':<12} {'utilisation':>11} {'makespan s':>11} {'longest suggest s':>18}")
    for mode, r in pool.items():
        print(f"{mode:<12} {r['utilisation']:>10.1%} {r['makespan_s']:>11.1f} {r['longest_suggest_s']:>18.2f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "latency": rows, "utilisation": pool}, indent=1))
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
