"""Search efficiency of AutoDistill (autodistill.txt §4.3, Fig. 3) with power: how many trials BO,
random and evolutionary search need to find the students that beat a fixed baseline on both of the
study's objectives, and the hypervolume each has found after every trial.

    OMP_NUM_THREADS=1 nohup nice .venv/bin/python benchmarks/autodistill_search.py > /tmp/pool.log 2>&1 &
    .venv/bin/python benchmarks/autodistill_search.py --report-only     # the tables from the logs

The pool: every student of a 64-member grid of the study's space (hidden 96/128/192/256,
bottleneck 32/64, 1 or 4 heads, intermediate 64/192, 1 or 3 stacked FFNs; 6 blocks), each evaluated
once exactly as a trial of `studies/autodistill.yaml` is: that study's trainer options (Flash
Distillation from MiniLM-L6 on WikiText-2 at its step counts, masked-token accuracy on its held-out
blocks, latency at batch 1, sequence 128, one thread, under the host-wide measurement lock), seed 0.
Rows are appended to benchmarks/data/autodistill_pool_study.csv one student at a time with the
seconds each took, so a rerun continues where it stopped and the build time is on record.
`--remeasure-latency` times every student again in one pass (rows built on a busier machine would
look slower; latency depends on the architecture only).

The searches: the study's objectives (`mlm_accuracy` max, `latency_ms` min) over the pool, replayed
as benchmarks/search_efficiency.py replays a table (the study's 2 trials in flight, one unit of time
per trial; the `tabular` trainer's table), `--budget` trials each, `--seeds` seeds per searcher:
random, ax_mobo (the study's options), NSGA-II and MO-REA (populations of 8). Every searcher draws
from its own seed stream (seed + 1000 x its position), so the evolutionary searchers' initial
populations are not random search's first draws and their rows are independent evidence. Each
(searcher, seed) is appended to benchmarks/results/autodistill_search.jsonl when it ends.

The baseline (the paper's is MobileBERT) is the pool member that the fewest others beat on both
objectives while at least `--k` (5) do: at most 10 % of the pool, so finding the winners is a test
and not a matter of drawing anything. Printed per searcher: trials to the 1st, 3rd and 5th winner
(median [IQR], searches that found them), hypervolume regret at 10, 20 and 30 trials (median [IQR];
regret = 1 - HV found / HV of the pool's front, reference: the pool's worst accuracy and 1.1 x its
largest latency), and the two-sided Mann-Whitney U p-value of each against random search.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import mannwhitneyu, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.flash_fidelity import forward_flops  # noqa: E402
from benchmarks.search_efficiency import hv_curve, replay  # noqa: E402
from orchestrator import registry  # noqa: E402
from orchestrator.objectives import Objective, Objectives  # noqa: E402
from orchestrator.pareto import hypervolume  # noqa: E402
from search_spaces.autodistill import BLOCK_KEYS, AutoDistillSpace  # noqa: E402
from trainers.autodistill import trainer as flash_trainer  # noqa: E402
from trainers.autodistill.student import Student  # noqa: E402
from trainers.contract import TrialContext  # noqa: E402
from trainers.tabular import load_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "autodistill.yaml"
POOL = Path(__file__).parent / "data" / "autodistill_pool_study.csv"
LOG = Path(__file__).parent / "results" / "autodistill_search.jsonl"
#: the grid: every block dimension at two or four of the cpu preset's values, 64 students.
POOL_SPACE: dict[str, Any] = {"preset": "cpu", "hidden_size": [96, 128, 192, 256], "bottleneck_size": [32, 64],
                              "num_heads": [1, 4], "intermediate_size": [64, 192], "num_ffn": [1, 3]}
#: what a row keeps besides the configuration (the trial's other metrics are not needed to replay it).
METRICS = ("mlm_accuracy", "mlm_heldout_loss", "accuracy", "agreement", "latency_ms", "latency_cv", "params")
#: the searchers and their options (ax_mobo's are the study's; Ax in the caller's thread).
RUNS: dict[str, dict[str, Any]] = {
    "random": {},
    "ax_mobo": {"background": False},
    "nsga2": {"population": 8},
    "morea": {"population_size": 8, "sample_size": 3},
}
WINNERS = (1, 3, 5)
CHECKPOINTS = (10, 20, 30)


def study_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], int]:
    """The study's trainer options, searcher options, objectives and trials in flight."""
    study = yaml.safe_load(path.read_text())
    return (dict(study["trainer"]["options"]), dict(study["searcher"].get("options") or {}),
            list(study["objectives"]), int(study["budget"].get("max_concurrent", 1)))


def pool_configs(space: AutoDistillSpace) -> list[dict[str, int]]:
    return [dict(zip(BLOCK_KEYS, values)) for values in itertools.product(*(space.values[k] for k in BLOCK_KEYS))]


def name(config: dict[str, Any]) -> str:
    return "_".join(str(int(config[k])) for k in BLOCK_KEYS)


def build_pool(path: Path, space: AutoDistillSpace, options: dict[str, Any]) -> pd.DataFrame:
    """Every pool member's metrics, evaluating only those not yet in `path` (appended one by one)."""
    columns = [*BLOCK_KEYS, *METRICS, "seconds"]
    done = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=columns)
    have = {name(r) for r in done.to_dict("records")}
    configs = pool_configs(space)
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = {"space": {"name": "autodistill", "options": POOL_SPACE},
               "trainer": {"kind": "flash_distill", "options": options}, "study": str(STUDY.relative_to(ROOT))}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    for i, config in enumerate(configs):
        if name(config) in have:
            continue
        start = time.perf_counter()
        metrics = flash_trainer.train(TrialContext(f"pool{i}", config, space, options, seed=0),
                                      lambda m, checkpoint=None: None)
        row = {**config, **{m: float(metrics[m]) for m in METRICS if m in metrics}, "seconds": time.perf_counter() - start}
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(path, index=False)
        print(f"# pool {len(done)}/{len(configs)}: {name(config)} mlm_accuracy {row['mlm_accuracy']:.4f} latency "
              f"{row['latency_ms']:.2f} ms (cv {row['latency_cv']:.3f}) in {row['seconds']:.0f} s", flush=True)
    return done


def remeasure_latency(path: Path, frame: pd.DataFrame, space: AutoDistillSpace, options: dict[str, Any]) -> pd.DataFrame:
    """Latency of every pool member measured again in one pass, so all rows share the machine's load."""
    opts = flash_trainer.FlashDistillOptions(**options)
    frame = frame.copy()
    for i, row in frame.iterrows():
        arch = space.architecture({k: int(row[k]) for k in BLOCK_KEYS})
        measured = flash_trainer.student_latency(Student(arch), opts)
        frame.loc[i, "latency_ms"] = float(measured["latency_ms"])
        frame.loc[i, "latency_cv"] = float(measured["latency_cv"])
    frame.to_csv(path, index=False)
    return frame


def pool_objectives(frame: pd.DataFrame, study_objectives: list[dict[str, Any]]) -> Objectives:
    """The study's objectives with references from the pool: its worst value of a maximised metric,
    1.1 x its largest of a minimised one (so every member counts towards the hypervolume)."""
    def ref(metric: str, mode: str) -> float:
        values = frame[metric].astype(float)
        return float(values.min()) if mode == "max" else 1.1 * float(values.max())
    return Objectives(tuple(Objective(o["metric"], o["mode"], ref=ref(o["metric"], o["mode"])) for o in study_objectives))


def beats(frame: pd.DataFrame, objectives: Objectives, i: int) -> np.ndarray:
    """Which members are strictly better than member `i` on every objective."""
    values = objectives.matrix(frame.to_dict("records"))  # to minimise
    return np.all(values < values[i], axis=1)


def pick_baseline(frame: pd.DataFrame, objectives: Objectives, k: int) -> int:
    """The member beaten on every objective by the fewest others, but by at least `k`."""
    counts = np.array([beats(frame, objectives, i).sum() for i in range(len(frame))])
    eligible = np.nonzero(counts >= k)[0]
    if not len(eligible):
        raise SystemExit(f"no pool member is beaten by {k} others on every objective; lower --k")
    return int(eligible[np.argmin(counts[eligible])])


def search(label: str, seed: int, frame: pd.DataFrame, objectives: Objectives, options: dict[str, Any],
           budget: int, workers: int, pool: Path, space: AutoDistillSpace) -> dict[str, Any]:
    """One replayed search: the points it found in order, and its hypervolume curve."""
    stream = seed + 1000 * list(RUNS).index(label)
    searcher = registry.searchers.load(label)(space, objectives, (), stream, **options)
    start = time.perf_counter()
    run = replay(load_table(pool, space), searcher, None, objectives, budget, workers)
    ref = objectives.ref_point()
    curve = hv_curve(run, ref, budget)
    true_hv = hypervolume(objectives.matrix(frame.to_dict("records")), ref)
    return {"label": label, "seed": seed, "stream": stream, "budget": budget, "points": run.points,
            "regret": ((true_hv - curve) / true_hv).tolist(), "seconds": time.perf_counter() - start}


def trials_to_winners(points: Sequence[Sequence[float]], baseline: np.ndarray) -> dict[int, int | None]:
    """1-based trial count at which the k-th distinct winner (better than `baseline` on every
    minimised objective) appeared, for k in WINNERS; None when it never did."""
    seen: set[tuple[float, ...]] = set()
    out: dict[int, int | None] = {k: None for k in WINNERS}
    for i, point in enumerate(points, start=1):
        if np.all(np.asarray(point) < baseline):
            seen.add(tuple(point))
            if len(seen) in out and out[len(seen)] is None:
                out[len(seen)] = i
    return out


def summarise(records: list[dict[str, Any]], baseline: np.ndarray, budget: int) -> str:
    """Trials to the winners and regret at the checkpoints, per searcher, with p against random."""
    by = {lab: [r for r in records if r["label"] == lab and r["budget"] == budget] for lab in RUNS}
    by = {lab: rows for lab, rows in by.items() if rows}
    counts = {lab: [trials_to_winners(r["points"], baseline) for r in rows] for lab, rows in by.items()}
    regret = {lab: np.array([r["regret"] for r in rows]) for lab, rows in by.items()}
    lines = [f"{'searcher':<9}{'seeds':>6}" + "".join(f"{'to winner ' + str(k):>24}" for k in WINNERS)
             + "".join(f"{'regret @' + str(c):>28}" for c in CHECKPOINTS if c <= budget)]
    for lab in by:
        cells = ""
        for k in WINNERS:
            # A search that never found k winners counts as budget + 1 (a lower bound) in the ranks.
            found = np.array([c[k] if c[k] is not None else budget + 1 for c in counts[lab]], dtype=float)
            base = np.array([c[k] if c[k] is not None else budget + 1 for c in counts.get("random", [])], dtype=float)
            n_found = sum(c[k] is not None for c in counts[lab])
            q1, med, q3 = np.percentile(found, [25, 50, 75])
            cells += f"{med:>6.1f} [{q1:.0f}-{q3:.0f}] {n_found:>2}/{len(found)}" + p_text(found, base, lab)
        for c in (c for c in CHECKPOINTS if c <= budget):
            r = regret[lab][:, c - 1]
            base = regret["random"][:, c - 1] if "random" in regret else np.array([])
            q1, med, q3 = np.percentile(r, [25, 50, 75])
            cells += f"{med:>9.3f} [{q1:.3f}-{q3:.3f}]" + p_text(r, base, lab)
        lines.append(f"{lab:<9}{len(by[lab]):>6}{cells}")
    return "\n".join(lines)


def p_text(values: np.ndarray, random_values: np.ndarray, label: str) -> str:
    """' pX.XX': the two-sided Mann-Whitney p of `values` against random search's, blank for random."""
    if label == "random" or len(random_values) == 0:
        return " " * 6
    if np.all(values == values[0]) and np.all(random_values == values[0]):
        return " p1.00"
    return f" p{mannwhitneyu(values, random_values).pvalue:.2f}"


def latency_check(frame: pd.DataFrame, space: AutoDistillSpace, options: dict[str, Any]) -> str:
    """Does the measured latency separate the students (issue: monotone in FLOPs within noise)?"""
    opts = flash_trainer.FlashDistillOptions(**options)
    flops = [forward_flops(space, {k: int(r[k]) for k in BLOCK_KEYS}, opts) for r in frame.to_dict("records")]
    rho, p = spearmanr(frame["latency_ms"], flops)
    quiet = int((frame["latency_cv"] <= 0.05).sum())
    return (f"# latency: {frame['latency_ms'].min():.2f}-{frame['latency_ms'].max():.2f} ms; Spearman rho against "
            f"forward FLOPs {rho:.3f} (p {p:.1e}); latency CV <= 0.05 in {quiet} of {len(frame)} students "
            f"(median CV {frame['latency_cv'].median():.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--pool", type=Path, default=POOL)
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=30, help="trials per search")
    parser.add_argument("--k", type=int, default=max(WINNERS), help="winners the baseline must leave to find")
    parser.add_argument("--remeasure-latency", action="store_true", help="time every pool member again in one pass")
    parser.add_argument("--build-only", action="store_true", help="build the pool, search nothing")
    parser.add_argument("--report-only", action="store_true", help="summarise pool and log, evaluate and search nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trainer_options, searcher_options, study_objectives, workers = study_settings(args.study)
    # The probe fine-tune is not what the study searches on; the regular distillation runs after a search.
    trainer_options.update(task=None, regular_students=0)
    space = AutoDistillSpace(**POOL_SPACE)
    frame = pd.read_csv(args.pool) if args.report_only else build_pool(args.pool, space, trainer_options)
    if args.remeasure_latency:
        frame = remeasure_latency(args.pool, frame, space, trainer_options)
    if args.build_only:
        return
    objectives = pool_objectives(frame, study_objectives)
    base = pick_baseline(frame, objectives, args.k)
    baseline = objectives.matrix(frame.to_dict("records"))[base]
    records = [json.loads(line) for line in args.log.read_text().splitlines()] if args.log.exists() else []
    done = {(r["label"], r["seed"], r["budget"]) for r in records}
    RUNS["ax_mobo"] = {**searcher_options, **RUNS["ax_mobo"]}
    for seed in range(args.seeds):  # seed by seed, so an interrupted run has equal seeds per searcher
        for label, options in RUNS.items():
            if args.report_only or (label, seed, args.budget) in done:
                continue
            record = search(label, seed, frame, objectives, options, args.budget, workers, args.pool, space)
            with args.log.open("a") as f:
                f.write(json.dumps(record) + "\n")
            records.append(record)
            print(f"# {label} seed {seed}: regret {record['regret'][-1]:.3f} at {args.budget} ({record['seconds']:.0f} s)",
                  flush=True)
    row = frame.iloc[base]
    header = (f"# command: {' '.join(sys.argv)}\n# {platform.machine()}, {len(frame)}-student pool "
              f"({args.pool.name}, built in {frame['seconds'].sum() / 60:.0f} min of one thread); objectives "
              f"{', '.join(f'{o.metric} {o.mode}' for o in objectives.items)}; {workers} trials in flight, "
              f"{args.budget} per search\n# baseline {name(row)}: mlm_accuracy {row['mlm_accuracy']:.4f}, latency "
              f"{row['latency_ms']:.2f} ms; {int(beats(frame, objectives, base).sum())} of {len(frame)} students "
              f"beat it on both\n# trials to the k-th winner: median [IQR] found/seeds (not found: counted as "
              f"{args.budget + 1}); regret: 1 - HV / pool front's HV; p: Mann-Whitney vs random\n"
              + latency_check(frame, space, trainer_options))
    text = header + "\n" + summarise(records, baseline, args.budget)
    print(text)
    out = args.log.with_suffix(".txt")
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
