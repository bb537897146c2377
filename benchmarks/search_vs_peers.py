"""Our searchers against Optuna's samplers on frozen tables of real evaluations (issue 15, item 5).

    OMP_NUM_THREADS=1 nohup nice .venv/bin/python benchmarks/search_vs_peers.py --seeds 20 &   # resumable
    .venv/bin/python benchmarks/search_vs_peers.py --report-only                                # the summary

Each table is replayed as `benchmarks/search_efficiency.py` replays one (the same loop: `--workers`
trials in flight, one unit of time per trial, no scheduler). Tables:
  - `movie_reviews`: every member of a coarse SMALL space of MiniLM-L6 scored on the shared weights of
    one super-network (benchmarks/make_subnet_table.py); accuracy (max, reference 0.5) and parameters
    (min, reference 1.1 x the largest);
  - `trec6`: the same space and recipe on TREC question classification (6 classes); the accuracy
    reference is the 0-layer network's, a constant answer;
  - `autodistill64`: the AutoDistill student pool of benchmarks/autodistill_search.py (64 students of
    studies/autodistill.yaml's space, each trained by the study's Flash Distillation, latency measured
    on CPU) with the study's objectives: masked-token accuracy (max) and latency (min), both measured;
    references: the pool's worst accuracy and 1.1 x its largest latency. Its budget is cut to 30
    trials (of 64 students).
Parameters are known to the space (`SearchSpace.metrics`); accuracy and latency are measured.
Regret = (HV of the table's true front - HV found) / HV of the true front.
Peers: Optuna's RandomSampler, TPESampler (multivariate, constant liar), GPSampler and NSGAIISampler
(population 20), through their plug-ins (orchestrator/searchers/optuna_samplers.py: pending trials
running, a repeated configuration answered from the stored result, so it costs no trial).
Model-based searchers (botorch_mobo, ax_mobo, optuna_gp) run `--bo-budget` trials.
Every (table, searcher, seed) is appended to `--log` as one JSON line when it ends; a rerun skips
what is there, so an interrupted run loses at most one replay.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import optuna  # the peers' version, for the record
import pandas as pd
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.autodistill_search import POOL, POOL_SPACE, STUDY, pool_objectives, study_settings  # noqa: E402
from benchmarks.search_efficiency import first_reaching, hv_curve, replay  # noqa: E402
from orchestrator import registry  # noqa: E402
from orchestrator.objectives import Objective, Objectives  # noqa: E402
from orchestrator.pareto import hypervolume  # noqa: E402
from orchestrator.searchers.base import Searcher  # noqa: E402
from search_spaces.autodistill import AutoDistillSpace  # noqa: E402
from search_spaces.base import SearchSpace  # noqa: E402
from search_spaces.pruning import SmallSpace  # noqa: E402
from trainers.tabular import load_table  # noqa: E402

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "results"
CHECKPOINTS = (5, 10, 15, 20, 30, 50, 100)
#: variants of a searcher under their own label: (searcher, options); run only when named in --runs.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"botorch_mobo_matern": ("botorch_mobo", {"kernel": "matern"}),
                                                   "botorch_mobo_auto": ("botorch_mobo", {"kernel": "auto"}),
                                                   "botorch_mobo_stationary": ("botorch_mobo", {"input_warping": False})}
OURS = ("random", "local", "nsga2", "morea", "botorch_mobo", *VARIANTS, "ax_mobo")
PEERS = ("optuna_random", "optuna_tpe", "optuna_gp", "optuna_nsga2")
MODEL_BASED = ("botorch_mobo", *VARIANTS, "ax_mobo", "optuna_gp")
#: the log's name for the suggestion-time runs, and their length.
LATENCY, LATENCY_TRIALS = "latency", 44
#: trials on the AutoDistill pool: the budget of benchmarks/autodistill_search.py, about half the pool.
AUTODISTILL_BUDGET = 30
#: as in search_efficiency.py: populations that evolve within 100 trials; Ax in the caller's thread.
OPTIONS: dict[str, dict[str, Any]] = {"ax_mobo": {"background": False}, "morea": {"population_size": 20, "sample_size": 5},
                                      "nsga2": {"population": 20}, "optuna_nsga2": {"population_size": 20}}


@dataclass(frozen=True)
class Problem:
    name: str
    table: Path
    space: SearchSpace
    objectives: Objectives
    max_budget: int


def pruning_problem(name: str, table: Path, accuracy_ref: Callable[[pd.DataFrame], float]) -> Problem:
    sidecar = json.loads(table.with_suffix(".json").read_text())
    frame = pd.read_csv(table)
    objectives = Objectives((Objective("accuracy", "max", ref=accuracy_ref(frame)),
                             Objective("params", "min", ref=1.1 * float(frame["params"].max()))))
    return Problem(name, table, SmallSpace(**sidecar["space"]["options"]), objectives, 100)


def autodistill_problem() -> Problem:
    """The 64-student pool with the study's objectives, as benchmarks/autodistill_search.py replays it."""
    _, _, study_objectives, _ = study_settings(STUDY)
    objectives = pool_objectives(pd.read_csv(POOL), study_objectives)
    return Problem("autodistill64", POOL, AutoDistillSpace(**POOL_SPACE), objectives, AUTODISTILL_BUDGET)


def problems() -> dict[str, Problem]:
    out = {"movie_reviews": pruning_problem("movie_reviews", DATA / "subnet_table_minilm_movie_reviews.csv", lambda f: 0.5)}
    trec = DATA / "subnet_table_minilm_trec6.csv"
    if trec.exists():
        zero_layers = lambda f: float(f.loc[f["num_layers"] == 0, "accuracy"].max())  # noqa: E731
        out["trec6"] = pruning_problem("trec6", trec, zero_layers)
    out["autodistill64"] = autodistill_problem()
    return out


def make_searcher(label: str, problem: Problem, seed: int) -> Searcher:
    name, options = VARIANTS.get(label, (label, {}))
    return registry.searchers.load(name)(problem.space, problem.objectives, (), seed, **OPTIONS.get(name, {}), **options)


def run_one(problem: Problem, label: str, seed: int, budget: int, workers: int) -> dict[str, Any]:
    table = load_table(problem.table, problem.space)
    frame = pd.read_csv(problem.table)
    ref = problem.objectives.ref_point()
    assert ref is not None
    true_hv = hypervolume(problem.objectives.matrix(frame.to_dict("records")), ref)
    t0 = time.perf_counter()
    run = replay(table, make_searcher(label, problem, seed), None, problem.objectives, budget, workers)
    curve = hv_curve(run, ref, budget)
    seconds = np.array(run.suggest_seconds)
    return {"problem": problem.name, "label": label, "seed": seed, "budget": budget, "hv": curve.tolist(),
            "regret": ((true_hv - curve) / true_hv).tolist(), "true_hv": true_hv,
            "suggest_seconds": seconds.tolist(), "suggest_cpu_seconds": run.suggest_cpu_seconds,
            "wall_seconds": time.perf_counter() - t0}


def late_cpu_seconds(runs: list[dict[str, Any]]) -> float | None:
    """Median CPU seconds of a run's last 20 suggestions (at 80-100 results in a 100-trial run: where a
    model of the history costs most), over the runs; None for runs logged before CPU time was."""
    cpu = [s for x in runs for s in x.get("suggest_cpu_seconds", [])[-20:]]
    return float(np.median(cpu)) if cpu else None


def tpe_p_value(regret: np.ndarray, tpe: np.ndarray | None, budget: int) -> float | None:
    """Two-sided Mann-Whitney p of the regret at the table's budget against Optuna's TPE there."""
    if tpe is None or regret.shape[1] < budget or tpe.shape[1] < budget:
        return None
    return float(mannwhitneyu(regret[:, budget - 1], tpe[:, budget - 1]).pvalue)


def summarise(records: list[dict[str, Any]], problem_names: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The text table and its JSON: per table and searcher, median regret [IQR] at each checkpoint,
    trials to random's final median HV, median seconds per suggestion (wall clock, after the first 10,
    when model-based searchers have a model; all of them for the others), median CPU seconds of the
    last 20 suggestions, the Mann-Whitney p-value (two-sided) against the strongest Optuna sampler at
    each checkpoint (lowest median regret), and the p-value against Optuna's TPE at the budget."""
    lines, out = [], {}
    for name in problem_names:
        rows = [r for r in records if r["problem"] == name]
        if not rows:
            continue
        labels = [lab for lab in (*OURS, *PEERS) if any(r["label"] == lab for r in rows)]
        by = {lab: [r for r in rows if r["label"] == lab] for lab in labels}
        regret = {lab: np.array([r["regret"] for r in by[lab]]) for lab in labels}
        budget = max(r["budget"] for r in rows)
        checkpoints = [c for c in CHECKPOINTS if c <= budget]
        random_level = float(np.median(np.array([r["hv"] for r in by["random"]])[:, -1])) if "random" in by else None
        lines.append(f"\n## {name}: median hypervolume regret [IQR]; p = Mann-Whitney vs the strongest Optuna sampler there")
        lines.append(f"{'searcher':<14}{'seeds':>6}" + "".join(f"{'@' + str(c):>27}" for c in checkpoints)
                     + f"{'to rnd@' + str(budget):>11}{'s/suggest':>11}{'cpu s late':>11}{'p tpe@' + str(budget):>11}")
        table: dict[str, Any] = {}
        for lab in labels:
            r = regret[lab]
            cells, entry = "", {}
            for c in checkpoints:
                if c > r.shape[1]:
                    cells += f"{'-':>27}"
                    continue
                peers = [p for p in PEERS if p in regret and regret[p].shape[1] >= c and p != lab]
                best = min(peers, key=lambda p: float(np.median(regret[p][:, c - 1]))) if peers else None
                p_value = float(mannwhitneyu(r[:, c - 1], regret[best][:, c - 1]).pvalue) if best else None
                q1, med, q3 = np.percentile(r[:, c - 1], [25, 50, 75])
                cells += f"{med:>8.3f} [{q1:.3f}-{q3:.3f}]" + (f" p{p_value:.2f}" if p_value is not None else " " * 6)
                entry[str(c)] = {"median": med, "q1": q1, "q3": q3, "vs": best, "p": p_value}
            hv = np.median(np.array([x["hv"] for x in by[lab]]), axis=0)
            reach = first_reaching(hv, random_level) if random_level is not None else None
            skip = 10 if lab in MODEL_BASED else 0
            seconds = float(np.median([s for x in by[lab] for s in x["suggest_seconds"][skip:]] or [np.nan]))
            reach_text = str(reach) if reach is not None else f">{len(hv)}"
            cpu_late = late_cpu_seconds(by[lab])
            vs_tpe = tpe_p_value(r, regret.get("optuna_tpe"), budget) if lab != "optuna_tpe" else None
            lines.append(f"{lab:<14}{len(by[lab]):>6}{cells}{reach_text:>11}{seconds:>11.4f}"
                         + (f"{cpu_late:>11.4f}" if cpu_late is not None else f"{'-':>11}")
                         + (f"{vs_tpe:>11.2f}" if vs_tpe is not None else f"{'-':>11}"))
            table[lab] = {"seeds": len(by[lab]), "regret": entry, "trials_to_random_final_hv": reach,
                          "suggest_seconds_median": seconds, "late_suggest_cpu_seconds_median": cpu_late,
                          "p_vs_optuna_tpe_at_budget": vs_tpe}
        out[name] = {"budget": budget, "random_final_hv": random_level, "searchers": table}
    return "\n".join(lines), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100, help="trials for the searchers that are not model-based")
    parser.add_argument("--bo-budget", type=int, default=30, help="trials for botorch_mobo, ax_mobo and optuna_gp")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", default=",".join(l for l in (*OURS, *PEERS) if l != "ax_mobo" and l not in VARIANTS),
                        help="comma-separated searchers (ax_mobo, at about 2 s a suggestion, and the variants "
                             f"{', '.join(VARIANTS)} are left out unless named)")
    parser.add_argument("--latency-seeds", type=int, default=3, help="runs to 44 trials that time suggestions at 40 results")
    parser.add_argument("--problems", default=None, help="comma-separated tables (default: all there are)")
    parser.add_argument("--log", type=Path, default=RESULTS / "search_vs_peers.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "search_vs_peers")
    parser.add_argument("--report-only", action="store_true", help="summarise the log without running anything")
    args = parser.parse_args()
    logging.getLogger("orchestrator").setLevel(logging.ERROR)
    every = problems()
    names = args.problems.split(",") if args.problems else list(every)
    labels = args.runs.split(",")
    unknown = [x for x in labels if x not in (*OURS, *PEERS)] + [x for x in names if x not in every]
    if unknown:
        parser.error(f"unknown searcher or table {unknown[0]!r}; searchers: {', '.join((*OURS, *PEERS))}; tables: {', '.join(every)}")
    records = [json.loads(line) for line in args.log.read_text().splitlines()] if args.log.exists() else []
    done = {(r["problem"], r["label"], r["seed"]) for r in records}
    if not args.report_only:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        # The baselines and the cheap searchers that matter most first (all seeds in minutes), then the
        # model-based ones seed by seed, interleaved so they always have equal seeds, their suggestion
        # time, then the rest seed by seed; an interrupted run still has every table.
        first = [lab for lab in ("random", "local", "optuna_tpe") if lab in labels]
        model_based = [lab for lab in labels if lab in MODEL_BASED]
        rest = [lab for lab in labels if lab not in first and lab not in model_based]
        jobs = [(lab, seed, name) for lab in first for seed in range(args.seeds) for name in names]
        jobs += [(lab, seed, name) for seed in range(args.seeds) for name in names for lab in model_based]
        # The suggestion time with 40 observations: model-based searchers on the first table to 44
        # trials (4 in flight, so about 40 results when trials 41-44 are suggested).
        jobs += [(lab, seed, LATENCY) for seed in range(args.latency_seeds) for lab in model_based]
        jobs += [(lab, seed, name) for seed in range(args.seeds) for name in names for lab in rest]
        for lab, seed, name in jobs:
            if (name, lab, seed) not in done:
                problem = every[names[0]] if name == LATENCY else every[name]
                budget = LATENCY_TRIALS if name == LATENCY else \
                    min(problem.max_budget, args.bo_budget if lab in MODEL_BASED else args.budget)
                record = run_one(problem, lab, seed, budget, args.workers) | {"problem": name}
                with args.log.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                records.append(record)
                print(f"# {name} {lab} seed {seed}: regret {record['regret'][-1]:.3f} at {budget}, "
                      f"{record['wall_seconds']:.0f}s", flush=True)
    header = (f"# command: {' '.join(sys.argv)}\n# {platform.processor() or platform.machine()}, OMP_NUM_THREADS=1, "
              f"{args.workers} workers; budgets: {args.budget} trials, model-based {args.bo_budget} "
              f"(autodistill64 {AUTODISTILL_BUDGET}); seeds per searcher in the table; optuna {optuna.__version__}")
    text, summary = summarise(records, names)
    timed = [r for r in records if r["problem"] == LATENCY]
    if timed:
        text += f"\n\n## seconds per suggestion with about 40 results ({names[0]}, suggestions 41-44, median [max])"
        for lab in sorted({r["label"] for r in timed}):
            seconds = [x for r in timed if r["label"] == lab for x in r["suggest_seconds"][40:44]]
            text += f"\n{lab:<14}{len(seconds) // 4:>3} seeds {np.median(seconds):>8.3f} [{max(seconds):.3f}]"
            summary[LATENCY] = summary.get(LATENCY, {}) | {lab: {"median": float(np.median(seconds)), "max": max(seconds)}}
    print(header + text)
    args.out.with_suffix(".txt").write_text(header + text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": " ".join(sys.argv), "workers": args.workers,
                                                          "budget": args.budget, "bo_budget": args.bo_budget,
                                                          "tables": summary}, default=float) + "\n")


if __name__ == "__main__":
    main()
