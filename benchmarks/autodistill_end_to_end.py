"""AutoDistill's end-to-end claim: is the student the search finds better than a hand-designed one of
similar latency from the same template, after regular distillation and fine-tuning? (autodistill.txt
§4.2-4.3 compares its found students with MobileBERT at similar latency.)

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/autodistill_end_to_end.py > /tmp/e2e.log 2>&1 &
    .venv/bin/python benchmarks/autodistill_end_to_end.py --summary     # the tables, nothing trained

Found students: the Pareto front of the 64-student pool of `benchmarks/autodistill_search.py` on
studies/autodistill.yaml's objectives (masked-token accuracy after Flash Distillation, latency): what
a search of that space finds (BO finds this front in 20 trials in every seed there). Hand-designed
students: MobileBERT's proportions (Sun et al. 2020: inter-block hidden = 4 x the bottleneck,
4 heads, FFN intermediate = 4 x the bottleneck, stacked FFNs) at each bottleneck width of the
study's `cpu` preset, within its value lists (the preset stacks at most 3 FFNs). Each found student
is paired with the hand-designed one whose latency, measured here in one pass, is closest.

Every student of a pair gets the study's regular distillation (`trainers/autodistill/regular.py`:
Flash Distillation's stages with `regular_step_factor` x the steps), is fine-tuned on each of the
study's `regular_tasks` and scored on its test split, for each of `--seeds`. Each (student, seed)
appends its rows to `--out` (jsonl), so a rerun continues. Also recorded for every student: its Flash
Distillation metrics (what the search saw) and its latency. Printed: per task and student, mean and
standard deviation of test accuracy over seeds, and the found-minus-hand difference with a Welch
t-test p-value. Written to `--results`.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import ttest_ind

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.autodistill_search import POOL, STUDY, name, pool_objectives, study_settings  # noqa: E402
from orchestrator.pareto import non_dominated_mask  # noqa: E402
from search_spaces.autodistill import BLOCK_KEYS, PRESETS, AutoDistillSpace  # noqa: E402
from trainers.autodistill import trainer as flash_trainer  # noqa: E402
from trainers.autodistill.regular import regular_distill  # noqa: E402
from trainers.contract import TrialContext  # noqa: E402
from trainers.options import build_options  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: what a row keeps of the student's Flash Distillation trial (the search's view of it).
FLASH_METRICS = ("mlm_accuracy", "mlm_heldout_loss", "agreement", "params")


def hand_designed(preset: str = "cpu") -> list[dict[str, int]]:
    """MobileBERT's block proportions at each bottleneck width the preset allows (values capped to its lists)."""
    values = PRESETS[preset]

    def at_most(key: str, target: int) -> int | None:
        fitting = [v for v in values[key] if v <= target]
        return max(fitting) if fitting else None

    out = []
    for bottleneck in values["bottleneck_size"]:
        hidden = 4 * bottleneck
        if hidden not in values["hidden_size"]:
            continue
        out.append({"hidden_size": hidden, "bottleneck_size": bottleneck, "num_heads": at_most("num_heads", 4),
                    "intermediate_size": at_most("intermediate_size", 4 * bottleneck),
                    "num_ffn": max(values["num_ffn"])})
    return out


def found_students(frame: pd.DataFrame, study_objectives: list[dict[str, Any]]) -> list[dict[str, int]]:
    """The pool's Pareto front on the study's objectives, most accurate first."""
    objectives = pool_objectives(frame, study_objectives)
    mask = non_dominated_mask(objectives.matrix(frame.to_dict("records")))
    front = frame[mask].sort_values(study_objectives[0]["metric"], ascending=study_objectives[0]["mode"] == "min")
    return [{k: int(r[k]) for k in BLOCK_KEYS} for r in front.to_dict("records")]


def pair_by_latency(found: list[dict[str, int]], hand: list[dict[str, int]],
                    latency: dict[str, float]) -> list[tuple[dict[str, int], dict[str, int]]]:
    """Each found student with the hand-designed one whose measured latency is closest (relative)."""
    return [(f, min(hand, key=lambda h: abs(np.log(latency[name(h)] / latency[name(f)])))) for f in found]


def flash_metrics(space: AutoDistillSpace, config: dict[str, int], options: dict[str, Any]) -> dict[str, float]:
    """The student's trial as the study runs it (Flash Distillation, latency; no probe), seed 0."""
    metrics = flash_trainer.train(TrialContext(f"e2e-{name(config)}", config, space, options, seed=0),
                                  lambda m, checkpoint=None: None)
    return {m: float(metrics[m]) for m in (*FLASH_METRICS, "latency_ms", "latency_cv") if m in metrics}


def run_student(space: AutoDistillSpace, config: dict[str, int], options: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    opts = build_options(flash_trainer.FlashDistillOptions, options)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = regular_distill(space.architecture(config), opts, seed, out, log=lambda s: print(f"  {s}", flush=True))
    for r in rows:
        r.pop("export", None)
        r["seconds"] = time.perf_counter() - start
    return rows


def summarise(records: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(records)
    lines = []
    # A hand-designed student paired with several found ones is trained once per seed: rows by student.
    for found, hand in frame[["pair_found", "pair_hand"]].drop_duplicates().itertuples(index=False):
        pair = frame[frame["student"].isin([found, hand])].drop_duplicates(["student", "seed", "task"])
        lines.append(f"\n## found {found} against hand-designed {hand}")
        info = pair.drop_duplicates("student").set_index("student")
        for student in (found, hand):
            r = info.loc[student]
            lines.append(f"  {student:<18} {r['role']:<6} latency {r['latency_ms']:.2f} ms (cv {r['latency_cv']:.3f}), "
                         f"{r['params'] / 1e6:.2f}M params; after Flash Distillation mlm_accuracy {r['flash_mlm_accuracy']:.4f}, "
                         f"held-out loss {r['flash_mlm_heldout_loss']:.3f}")
        lines.append(f"  {'task':<14}{'found':>18}{'hand-designed':>18}{'found - hand':>14}{'p (Welch)':>11}{'seeds':>7}  "
                     f"{'mlm_accuracy after regular distillation (found / hand)'}")
        for task, rows in pair.groupby("task", sort=False):
            a = rows.loc[rows["student"] == found, "accuracy"].to_numpy(float)
            b = rows.loc[rows["student"] == hand, "accuracy"].to_numpy(float)
            ma = rows.loc[rows["student"] == found, "mlm_accuracy"].to_numpy(float)
            mb = rows.loc[rows["student"] == hand, "mlm_accuracy"].to_numpy(float)
            p = ttest_ind(a, b, equal_var=False).pvalue if min(len(a), len(b)) > 1 else float("nan")
            cell = lambda x: f"{x.mean():.3f} ± {x.std(ddof=1) if len(x) > 1 else 0:.3f}"  # noqa: E731
            lines.append(f"  {task:<14}{cell(a):>18}{cell(b):>18}{a.mean() - b.mean():>+14.3f}{p:>11.3f}"
                         f"{min(len(a), len(b)):>7}  {ma.mean():.3f} / {mb.mean():.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=STUDY)
    parser.add_argument("--pool", type=Path, default=POOL)
    parser.add_argument("--found", type=int, default=2, help="front members compared (most accurate first)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "autodistill_end_to_end.jsonl")
    parser.add_argument("--results", type=Path, default=RESULTS / "autodistill_end_to_end.txt")
    parser.add_argument("--summary", action="store_true", help="print the tables of --out and train nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    options, _, study_objectives, _ = study_settings(args.study)
    options.update(task=None, regular_students=0)  # the regular distillation runs here, per student
    records = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    if not args.summary:
        space = AutoDistillSpace(preset="cpu")
        frame = pd.read_csv(args.pool)
        found = found_students(frame, study_objectives)[: args.found]
        hand = hand_designed()
        # A student's Flash Distillation trial runs once: a rerun reads it back from its first row.
        known = {r["student"]: {**{m: r[f"flash_{m}"] for m in FLASH_METRICS if m != "params"},
                                **{m: r[m] for m in ("params", "latency_ms", "latency_cv")}} for r in records}
        searched = {name(c): known.get(name(c)) or flash_metrics(space, c, options) for c in [*found, *hand]}
        latency = {k: float(v["latency_ms"]) for k, v in searched.items()}
        print("# latency ms: " + ", ".join(f"{k} {v:.2f}" for k, v in latency.items()), flush=True)
        done = {(r["student"], r["seed"]) for r in records}
        for seed in args.seeds:  # seed by seed, so a run stopped early has equal seeds per student
            for f, h in pair_by_latency(found, hand, latency):
                for role, config in (("found", f), ("hand", h)):
                    if (name(config), seed) in done:
                        continue
                    done.add((name(config), seed))
                    print(f"# seed {seed}: {role} {name(config)} (pair {name(f)} / {name(h)})", flush=True)
                    s = searched[name(config)]
                    base = {"pair_found": name(f), "pair_hand": name(h), "student": name(config), "role": role,
                            "seed": seed, **config, "latency_ms": s["latency_ms"], "latency_cv": s["latency_cv"],
                            "params": s["params"], **{f"flash_{m}": s[m] for m in FLASH_METRICS if m != "params"}}
                    rows = [base | r for r in run_student(space, config, options, seed)]
                    with args.out.open("a") as out:
                        out.writelines(json.dumps(r) + "\n" for r in rows)
                    records.extend(rows)
    opts = build_options(flash_trainer.FlashDistillOptions, options)
    header = (f"# command: {' '.join(sys.argv)}\n# {platform.machine()}; study {args.study.name}: regular distillation "
              f"{opts.regular_step_factor:g}x Flash Distillation's steps, {opts.regular_finetune_steps} fine-tuning steps "
              f"on {opts.regular_train_examples} examples, test split (up to {opts.task_eval_examples} examples); "
              f"test accuracy mean ± sd over seeds")
    text = header + summarise(records) if records else header + "\n(no rows yet)"
    print(text)
    if not args.summary or records:
        args.results.write_text(text + "\n")


if __name__ == "__main__":
    main()
