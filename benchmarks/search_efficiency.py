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

With `--curves TABLE` it replays a table of learning curves instead (`benchmarks/make_curve_table.py`:
standard NAS, each sub-network fine-tuned on its own for E epochs, accuracy after every epoch), as
the pruning paper uses MO-ASHA (§4.1.2): random and ax_mobo each with the FIFO scheduler (every
trial trains all E epochs) and with MO-ASHA (`fidelity: epoch`), both the project's scheduler
plug-ins driven as a study drives them. Time and cost are epochs: one epoch of any trial is one
unit, and regret is plotted against cumulative epochs spent. A suggestion is evaluated as the
table member nearest to it in the space's unit cube (the table holds a spread sample, not every
member), and the searcher observes that member's curve. Only trials that ran all E epochs count
towards the front; the true front is that of the table's epoch-E rows. A two-sided Mann-Whitney U
test compares each searcher's MO-ASHA and FIFO regrets over the seeds at a few budgets.

    .venv/bin/python benchmarks/search_efficiency.py --curves benchmarks/data/curve_table_minilm_movie_reviews.csv --seeds 10
"""
from __future__ import annotations

import argparse
import heapq
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from orchestrator import registry
from orchestrator.objectives import Objective, Objectives
from orchestrator.pareto import hypervolume
from orchestrator.schedulers.base import Decision, Scheduler
from search_spaces.base import SearchSpace
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


#: (label, searcher, scheduler) of a curve-table replay, in the order the table prints them.
CURVE_RUNS = (("random", "random", "fifo"), ("random+moasha", "random", "moasha"),
              ("ax_mobo", "ax_mobo", "fifo"), ("ax_mobo+moasha", "ax_mobo", "moasha"))
CURVE_RESULTS = Path(__file__).parent / "results" / "search_efficiency_curves.json"
#: budgets (fractions of the whole budget) at which MO-ASHA and FIFO are tested against each other.
TEST_FRACTIONS = (0.25, 0.5, 1.0)


@dataclass
class Replay:
    """One search: the full-fidelity points in completion order, with the time spent when each came."""

    spent: list[float] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    suggest_seconds: list[float] = field(default_factory=list)
    #: the process's CPU time of each suggestion: what it costs, whatever else runs on the machine.
    suggest_cpu_seconds: list[float] = field(default_factory=list)
    trials: int = 0
    #: the steps (a curve table's epochs) each ended trial ran, in the order they ended.
    steps_per_trial: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Curves:
    """A learning-curve table: its members (configurations), their per-epoch metrics, and the members
    as points of the space's unit cube (to evaluate a suggestion as its nearest member)."""

    space: SearchSpace
    configs: list[dict[str, Any]]
    curves: list[list[dict[str, float]]]
    units: np.ndarray  # (members, dims)

    @property
    def epochs(self) -> int:
        return len(self.curves[0])

    def nearest(self, config: dict[str, Any]) -> int:
        """The member nearest to `config` (the first of equals, so a replay is repeatable)."""
        return int(np.argmin(np.linalg.norm(self.units - self.space.to_unit(config), axis=1)))

    def final(self) -> pd.DataFrame:
        """The epoch-E row of every member."""
        return pd.DataFrame([{**c, **curve[-1]} for c, curve in zip(self.configs, self.curves)])


def load_curves(path: Path) -> Curves:
    """A table written by `benchmarks/make_curve_table.py` and its sidecar's space; members that lack
    an epoch of 1..E (an unfinished table) are left out."""
    sidecar = json.loads(path.with_suffix(".json").read_text())
    space = SmallSpace(**sidecar["space"]["options"])
    frame, names = pd.read_csv(path), [d.name for d in space.dims]
    epochs = int(frame["epoch"].max())
    configs, curves = [], []
    for key, group in frame.sort_values("epoch").groupby(names, sort=False):
        if group["epoch"].tolist() != list(range(1, epochs + 1)):
            continue
        configs.append({n: int(v) for n, v in zip(names, key)})
        curves.append([{k: float(v) for k, v in row.items() if k not in names} for row in group.to_dict("records")])
    if not configs:
        raise SystemExit(f"{path} holds no sub-network with all {epochs} epochs; finish it with benchmarks/make_curve_table.py")
    return Curves(space, configs, curves, np.array([space.to_unit(c) for c in configs]))


def objectives(frame: pd.DataFrame, accuracy_ref: float = 0.5) -> Objectives:
    return Objectives((Objective("accuracy", "max", ref=accuracy_ref),
                       Objective("params", "min", ref=1.1 * float(frame["params"].max()))))


def suggest(searcher: Searcher, trial_id: str, seconds: list[float], cpu_seconds: list[float]) -> dict[str, Any] | None:
    t0, cpu0 = time.perf_counter(), time.process_time()
    config = searcher.suggest(trial_id)
    while config is None:  # a searcher computing off the caller's thread
        time.sleep(0.01)
        config = searcher.suggest(trial_id)
    seconds.append(time.perf_counter() - t0)
    cpu_seconds.append(time.process_time() - cpu0)
    return None if isinstance(config, Finished) else config


#: a trial's results in order: (cost of the step in time units, metrics reported after it); the last is full fidelity.
Steps = list[tuple[float, dict[str, float]]]


def replay_steps(steps_of: Callable[[dict[str, Any]], Steps], searcher: Searcher, scheduler: Scheduler | None,
                 objs: Objectives, budget: float, workers: int) -> Replay:
    """Run until `budget` units of trial time are spent, keeping `workers` trials in flight; a trial
    reports after each of its steps and ends when `scheduler` stops it or after its last step."""
    out, events, clock, total = Replay(), [], 0.0, 0.0
    running: dict[str, Steps] = {}
    while total < budget:
        while len(running) < workers:
            trial_id = f"t{out.trials}"
            config = suggest(searcher, trial_id, out.suggest_seconds, out.suggest_cpu_seconds)
            if config is None:
                break
            out.trials += 1
            running[trial_id] = steps_of(config)
            if scheduler is not None:
                scheduler.on_trial_add(trial_id, config)
            heapq.heappush(events, (clock + running[trial_id][0][0], out.trials, trial_id, 0))  # (finish time, start order, trial, step)
        if not events:
            break
        clock, order, trial_id, step = heapq.heappop(events)
        steps = running[trial_id]
        cost, metrics = steps[step]
        total += cost
        searcher.on_trial_result(trial_id, metrics)
        decision = scheduler.on_trial_result(trial_id, metrics) if scheduler else Decision.CONTINUE
        if decision is Decision.CONTINUE and step + 1 < len(steps):
            heapq.heappush(events, (clock + steps[step + 1][0], order, trial_id, step + 1))
            continue
        # Stopped, or finished: the searcher learns from the last result, as in a study.
        del running[trial_id]
        if scheduler is not None:
            scheduler.on_trial_complete(trial_id, metrics)
        searcher.on_trial_complete(trial_id, metrics)
        out.steps_per_trial.append(step + 1)
        if step + 1 == len(steps):
            out.spent.append(total)
            out.points.append(objs.to_minimise(metrics).tolist())
    close = getattr(searcher, "close", None)
    if callable(close):
        close()
    return out


def replay(table: Table, searcher: Searcher, scheduler: Scheduler | None, objs: Objectives, budget: float, workers: int) -> Replay:
    """The subnet table: with a scheduler, step 1 (a quarter of the validation data) then step 2;
    without one, a trial is one step of the whole cost."""

    def steps_of(config: dict[str, Any]) -> Steps:
        low, full = fidelities(table.lookup(config))
        if scheduler is None:
            return [(1.0, {**full, "step": 2})]
        return [(LOW_COST, {**low, "step": 1}), (1.0 - LOW_COST, {**full, "step": 2})]

    return replay_steps(steps_of, searcher, scheduler, objs, budget, workers)


def replay_curves(curves: Curves, searcher: Searcher, scheduler: Scheduler, objs: Objectives, budget: float,
                  workers: int) -> Replay:
    """A curve table: a trial's steps are its nearest member's epochs, one time unit each."""

    def steps_of(config: dict[str, Any]) -> Steps:
        curve = curves.curves[curves.nearest(config)]
        return [(1.0, {**metrics, "epoch": float(epoch)}) for epoch, metrics in enumerate(curve, start=1)]

    return replay_steps(steps_of, searcher, scheduler, objs, budget, workers)


def hv_curve(run: Replay, ref: np.ndarray, budget: int) -> np.ndarray:
    """Hypervolume of the full-fidelity points found by each whole unit of time 1..budget."""
    spent, points = np.array(run.spent), np.array(run.points).reshape(-1, len(ref))
    return np.array([hypervolume(points[spent <= t + 1e-9], ref) for t in range(1, budget + 1)])


def search(searcher_name: str, scheduler_name: str | None, table: Table, space: SmallSpace,
           objs: Objectives, seed: int, budget: int, workers: int) -> Replay:
    searcher = registry.searchers.load(searcher_name)(space, objs, (), seed, **SEARCHER_OPTIONS.get(searcher_name, {}))
    scheduler = registry.schedulers.load(scheduler_name)(objs, seed, **MOASHA) if scheduler_name else None
    return replay(table, searcher, scheduler, objs, budget, workers)


def search_curves(searcher_name: str, scheduler_name: str, curves: Curves, objs: Objectives, seed: int, budget: int,
                  workers: int, reduction_factor: float = 3) -> Replay:
    searcher = registry.searchers.load(searcher_name)(curves.space, objs, (), seed, **SEARCHER_OPTIONS.get(searcher_name, {}))
    fidelity = {"fidelity": "epoch", "min_fidelity": 1, "max_fidelity": curves.epochs, "reduction_factor": reduction_factor}
    scheduler = registry.schedulers.load(scheduler_name)(objs, seed, **(fidelity if scheduler_name == "moasha" else {}))
    return replay_curves(curves, searcher, scheduler, objs, budget, workers)


def first_reaching(curve: np.ndarray, level: float) -> int | None:
    """The first trial count (1-based) at which `curve` reaches `level`."""
    hits = np.nonzero(curve >= level - 1e-12)[0]
    return int(hits[0]) + 1 if len(hits) else None


def spread(values: np.ndarray) -> str:
    """Median [interquartile range] of `values`."""
    return f"{np.median(values):.4f} [{np.percentile(values, 25):.3f}-{np.percentile(values, 75):.3f}]"


def curves_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Replay a learning-curve table: FIFO vs MO-ASHA per searcher, regret against cumulative epochs."""
    from scipy.stats import mannwhitneyu

    wanted = args.runs.split(",") if args.runs else [r[0] for r in CURVE_RUNS]
    unknown = [w for w in wanted if w not in {r[0] for r in CURVE_RUNS}]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r} for --curves; choose from {', '.join(r[0] for r in CURVE_RUNS)}")
    curves = load_curves(args.curves)
    final = curves.final()
    # Accuracy 0.5, or just below the table's worst when a (tiny, smoke) table scores under it,
    # so that the true front has a hypervolume.
    objs = objectives(final, min(0.5, float(final["accuracy"].min()) - 0.01))
    ref = objs.ref_point()
    assert ref is not None
    true_hv = hypervolume(objs.matrix(final.to_dict("records")), ref)
    budget = args.budget or len(curves.configs) * curves.epochs // 2
    print(f"# {args.curves.name}: {len(curves.configs)} sub-networks x {curves.epochs} epochs, {args.seeds} seeds, "
          f"{args.workers} workers, {budget} epochs; MO-ASHA eta {args.reduction_factor:g}; "
          f"reference (accuracy {-ref[0]:.2f}, params {ref[1] / 1e6:.2f}M); true front HV {true_hv:.4g}")
    results: dict[str, Any] = {}
    for label, searcher_name, scheduler_name in CURVE_RUNS:
        if label not in wanted:
            continue
        runs, t0 = [], time.perf_counter()
        for seed in range(args.seeds):
            runs.append(search_curves(searcher_name, scheduler_name, curves, objs, seed, budget, args.workers,
                                      args.reduction_factor))
        hv = np.array([hv_curve(run, ref, budget) for run in runs])
        results[label] = {"hv": hv.tolist(), "regret": ((true_hv - hv) / true_hv).tolist(),
                          "trials_started": [r.trials for r in runs], "trials_full": [len(r.spent) for r in runs],
                          "epochs_per_trial": [float(np.mean(r.steps_per_trial)) for r in runs],
                          "suggest_seconds_median": float(np.median([s for r in runs for s in r.suggest_seconds])),
                          "wall_seconds": time.perf_counter() - t0}
        print(f"# {label}: {time.perf_counter() - t0:.0f}s", flush=True)

    checkpoints = sorted({max(1, round(f * budget)) for f in TEST_FRACTIONS})
    print(f"\nmedian hypervolume regret [IQR] after N epochs ({args.seeds} seeds); lower is better")
    print(f"{'run':<16}" + "".join(f"{'@' + str(c):>21}" for c in checkpoints) + f"{'started':>9}{'all E':>7}{'epochs/trial':>14}")
    for label, r in results.items():
        regret = np.array(r["regret"])
        print(f"{label:<16}" + "".join(f"{spread(regret[:, c - 1]):>21}" for c in checkpoints)
              + f"{np.median(r['trials_started']):>9.0f}{np.median(r['trials_full']):>7.0f}{np.median(r['epochs_per_trial']):>14.2f}")

    tests: dict[str, Any] = {}
    print("\nMO-ASHA vs FIFO, two-sided Mann-Whitney U on the seeds' regrets")
    for searcher_name in dict.fromkeys(r[1] for r in CURVE_RUNS):
        fifo, moasha = results.get(searcher_name), results.get(f"{searcher_name}+moasha")
        if fifo is None or moasha is None:
            continue
        for c in checkpoints:
            a, b = np.array(moasha["regret"])[:, c - 1], np.array(fifo["regret"])[:, c - 1]
            p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue) if not np.array_equal(np.sort(a), np.sort(b)) else 1.0
            tests[f"{searcher_name}@{c}"] = {"moasha_median": float(np.median(a)), "fifo_median": float(np.median(b)), "p": p}
            print(f"  {searcher_name:<10} @{c:<5} regret {np.median(a):.4f} (MO-ASHA) vs {np.median(b):.4f} (FIFO)  p = {p:.3g}")

    reach: dict[str, Any] = {}
    if BASELINE in results:
        level = float(np.median(np.array(results[BASELINE]["hv"])[:, -1]))
        print(f"\nrandom/FIFO's median HV after {budget} epochs: {level:.4g}; epochs each run needs to reach it (medians)")
        for label, r in results.items():
            k = first_reaching(np.median(np.array(r["hv"]), axis=0), level)
            reach[label] = k
            share = f"{k / budget:.0%} of the epochs" if k is not None else "not reached"
            print(f"  {label:<16} {k if k is not None else f'> {budget}'} ({share})")
    out = args.out or CURVE_RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "table": str(args.curves), "table_info": json.loads(args.curves.with_suffix(".json").read_text()),
        "members": len(curves.configs), "epochs": curves.epochs, "seeds": args.seeds, "workers": args.workers,
        "budget_epochs": budget, "reduction_factor": args.reduction_factor, "searcher_options": SEARCHER_OPTIONS,
        "reference": {"accuracy": float(-ref[0]), "params": float(ref[1])}, "true_hv": true_hv,
        "epochs_to_random_fifo_hv": reach, "tests": tests, "runs": results,
    }) + "\n")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (3 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"3 seeds (unless --seeds is given) and only {', '.join(QUICK)}")
    parser.add_argument("--runs", default=None, help="comma-separated labels to run (default: all)")
    parser.add_argument("--budget", type=int, default=None,
                        help="trials (full evaluations' worth of time; default 100); with --curves, epochs "
                             "(default: half the table's epochs)")
    parser.add_argument("--bo-budget", type=int, default=None,
                        help="trials for the Ax runs (default: --budget; 50 with --quick): enough to check the target")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS} ({CURVE_RESULTS} with --curves)")
    parser.add_argument("--curves", type=Path, default=None, help="replay this learning-curve table (make_curve_table.py)")
    parser.add_argument("--reduction-factor", type=float, default=3, help="MO-ASHA's eta (with --curves)")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 10)
    if args.curves is not None:
        return curves_main(args, parser)
    args.budget = args.budget or 100
    args.out = args.out or RESULTS
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
