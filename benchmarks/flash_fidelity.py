"""Does Flash Distillation rank students on the study's objective as a 10x longer distillation does?
(autodistill.txt §3.3, §4.7 and Fig. 6: Flash Distillation is only a useful fidelity if its ranking
of students by pre-training accuracy matches the ranking after thorough distillation.)

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/flash_fidelity.py > /tmp/flash_fidelity.log 2>&1 &
    .venv/bin/python benchmarks/flash_fidelity.py --summary      # tables from the jsonl, nothing trained
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flash_fidelity.py --split 10 120   # another flash split, same long runs
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flash_fidelity.py --flash-set alpha=0.9   # other flash options

Everything comes from the study file (`--study`, default studies/autodistill.yaml): the space
preset, the trainer's options (Flash Distillation's step counts, batch, held-out blocks, latency
settings) and the objective ranked (its first objective, `mlm_accuracy`). Students: `--students`
configurations spread over the space (the smallest, the largest, and the rest at evenly spaced
size quantiles of 200 random ones), the same for every seed. For every seed in `--seeds` each student is
Flash-distilled with the study's defaults and, from the same start, distilled `--factor` times
longer with the same schedule (`regular_config`, the regular distillation after the search). Each
finished (seed, student) appends one row to `--out` (jsonl), so a rerun continues where it stopped.

Printed per seed: the Kendall tau (and p-value) of the flash ranking against the long one on the
objective, and on held-out teacher agreement for comparison; the cost ratio (long / flash student
seconds, the time spent getting the teacher's outputs left out of both). Once over the pool: the
Spearman rho of quiet latency (the trainer's measurement, under the host lock) against forward
FLOPs, and the share of measurements with latency CV <= 5 %. The seed-to-seed tau of each ranking
shows how much of the disagreement is training noise; beside an `mlm_accuracy` ranking, the accuracy of
answering the commonest masked token everywhere (the plateau a short distillation starts on), how
each ranking follows student size, and how well forward FLOPs alone (no training) rank the students
against the long run: the zero-cost baseline a flash ranking has to beat. The summary is also written to `--results`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from scipy.stats import kendalltau, spearmanr

from search_spaces.autodistill import AutoDistillSpace
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.regular import regular_config
from trainers.autodistill.student import Student
from trainers.autodistill.trainer import FlashDistillOptions, corpus_blocks, student_latency, teacher_cache_file
from trainers.distill.flash import flash_distill
from trainers.distill.masking import IGNORE, mask_tokens
from trainers.distill.teacher import shared_teacher
from trainers.distill.teacher_cache import TeacherTargets
from trainers.efficiency import count_flops, token_inputs
from trainers.options import build_options

TARGET_TAU = 0.6
MAX_CV = 0.05
ROOT = Path(__file__).resolve().parent.parent
#: held-out scores ranked beside the objective: a metric that ranks better is a candidate objective.
OTHER_SCORES = ("mlm_accuracy", "mlm_heldout_loss", "agreement")
BLOCK_KEYS = ("hidden_size", "bottleneck_size", "num_heads", "intermediate_size", "num_ffn")


def load_study(path: Path) -> tuple[AutoDistillSpace, FlashDistillOptions, str]:
    """The study's space, trainer options and first objective's metric."""
    study = yaml.safe_load(path.read_text())
    space = AutoDistillSpace(**(study["search_space"].get("options") or {}))
    opts = build_options(FlashDistillOptions, study["trainer"].get("options") or {})
    return space, opts, study["objectives"][0]["metric"]


def forward_flops(space: AutoDistillSpace, config: dict[str, Any], opts: FlashDistillOptions) -> int:
    """FLOPs of one forward at the latency measurement's batch and sequence length."""
    student = Student(space.architecture(config))
    inputs = token_inputs(student.arch.vocab_size)(opts.latency_batch, opts.latency_seq_len, torch.device("cpu"))
    return count_flops(student, inputs)


def spread_students(space: AutoDistillSpace, count: int) -> list[dict[str, Any]]:
    """The smallest, the largest, and students at evenly spaced size quantiles of 200 random ones
    (non-embedding parameters: analytic, and what FLOPs per token grow with)."""
    rng = np.random.default_rng(0)
    pool = [space.sample(rng) for _ in range(200)]
    pool = [c for i, c in enumerate(pool) if c not in pool[:i]]
    pool.sort(key=lambda c: space.metrics(c)["params_non_embedding"])
    chosen = [space.smallest(), space.largest()]
    for index in np.linspace(0, len(pool) - 1, count).round().astype(int):
        if pool[index] not in chosen and len(chosen) < count:
            chosen.append(pool[index])
    # In a shuffled order after the two extremes, so the first students of a run stopped early are spread too.
    return chosen[:2] + [chosen[2 + i] for i in rng.permutation(len(chosen) - 2)]


class TimedTargets(TeacherTargets):
    """Teacher outputs that count the seconds spent getting them, so a run's cost is the student's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = 0.0

    def layer(self, ids: torch.Tensor, layer: int, attention: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        start = time.perf_counter()
        try:
            return super().layer(ids, layer, attention)
        finally:
            self.seconds += time.perf_counter() - start


def distil(space: AutoDistillSpace, config: dict[str, Any], opts: FlashDistillOptions, factor: float, seed: int,
           blocks: tuple[torch.Tensor, torch.Tensor]) -> tuple[dict[str, float], float]:
    """Final metrics and student seconds (teacher outputs not counted) of one distillation (`factor` 1:
    the study's Flash Distillation, its teacher outputs from the study's table; the long run asks the
    live teacher, as regular distillation does: a table 10x larger would fill memory)."""
    arch = space.architecture(config)
    teacher = shared_teacher(opts.teacher, "cpu")
    flash = opts.flash_config()
    schedule = flash if factor == 1 else regular_config(flash, factor)
    targets = TimedTargets(teacher, teacher_cache_file(opts, arch, seed) if factor == 1 else None)
    torch.manual_seed(seed)
    student = Student(arch)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    start = time.perf_counter()
    result = flash_distill(student, teacher, *blocks, schedule, lambda m, checkpoint=None: None, seed=seed,
                           targets=targets)
    seconds = time.perf_counter() - start - targets.seconds
    targets.save()
    return result.metrics, seconds


def measure_student(space: AutoDistillSpace, config: dict[str, Any], opts: FlashDistillOptions, metric: str,
                    factor: float, seed: int, blocks: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """One jsonl row: flash and long metrics, their costs, latency and FLOPs of one student."""
    latency = student_latency(Student(space.architecture(config)), opts)
    short, short_s = distil(space, config, opts, 1.0, seed, blocks)
    long, long_s = distil(space, config, opts, factor, seed, blocks)
    return {"seed": seed, "config": config, "metric": metric, "flash": short, "long": long,
            "flash_s": short_s, "long_s": long_s,
            "latency_ms": latency["latency_ms"], "latency_cv": latency["latency_cv"],
            "flops": forward_flops(space, config, opts), "params": space.metrics(config)["params"]}


def frequent_token_accuracy(tokenizer: Any, valid: torch.Tensor, mask_prob: float, seed: int, batch_size: int) -> float:
    """`mlm_accuracy` of a student that answers the commonest masked token everywhere: the same
    held-out blocks masked as `masked_token_scores` masks them (same seed, same batches). A flash
    score near it means the student has not yet learnt anything but token frequencies."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([label[label != IGNORE] for label in
                        (mask_tokens(ids, tokenizer, mask_prob, generator)[1] for ids in valid.split(batch_size))])
    return float(torch.bincount(labels).max()) / len(labels)


def size_taus(rows: list[dict[str, Any]], metric: str) -> str:
    """How each ranking follows student size: a flash ranking that runs against size where the long one
    runs with it is the short schedule favouring the students that learn fastest, not the best. And
    how well size alone (forward FLOPs) predicts the long ranking: the baseline flash has to beat."""
    params = [r["params"] for r in rows]
    flash = kendalltau(params, [r["flash"][metric] for r in rows])
    long = kendalltau(params, [r["long"][metric] for r in rows])
    # The zero-cost peer: ranking by forward FLOPs, no training at all. Flash Distillation earns its
    # cost only where it ranks closer to the long run than this does.
    flops = kendalltau([r["flops"] for r in rows], [r["long"][metric] for r in rows])
    return (f"Kendall tau of {metric} against parameters: flash {flash.statistic:.3f} (p = {flash.pvalue:.3f}), "
            f"long {long.statistic:.3f} (p = {long.pvalue:.3f}); ranking by forward FLOPs (no training) "
            f"against the long run: {flops.statistic:.3f} (p = {flops.pvalue:.3f})")


def name(config: dict[str, Any]) -> str:
    depth = f"_x{config['num_blocks']}" if "num_blocks" in config else ""
    return "_".join(str(config[k]) for k in BLOCK_KEYS) + depth


def other_taus(rows: list[dict[str, Any]], metric: str) -> list[tuple[str, Any]]:
    """Kendall tau of flash vs long on the held-out scores other than the objective (those every row has)."""
    names = [m for m in OTHER_SCORES if m != metric and all(m in r["flash"] and m in r["long"] for r in rows)]
    return [(m, kendalltau([r["flash"][m] for r in rows], [r["long"][m] for r in rows])) for m in names]


def summary(rows: list[dict[str, Any]], metric: str, factor: float, floors: dict[int, float] | None = None) -> list[str]:
    """The per-seed rankings, costs and the latency check, as printable lines; `floors`: the
    frequent-token accuracy per seed, printed beside an `mlm_accuracy` ranking."""
    lines = [f"{'seed':>4} {'student (h_b_heads_i_ffn)':<26}{'GFLOPs':>7}{'lat ms':>8}{'cv':>6}"
             f"{'flash ' + metric:>20}{'long':>7}{'flash agr':>10}{'long agr':>9}{'flash s':>8}{'long s':>7}"]
    for r in rows:
        lines.append(f"{r['seed']:>4} {name(r['config']):<26}{r['flops'] / 1e9:>7.3f}{r['latency_ms']:>8.2f}"
                     f"{r['latency_cv']:>6.3f}{r['flash'][metric]:>20.4f}{r['long'][metric]:>7.4f}"
                     f"{r['flash']['agreement']:>10.3f}{r['long']['agreement']:>9.3f}{r['flash_s']:>8.1f}"
                     f"{r['long_s']:>7.1f}")
    lines.append("")
    seeds = sorted({r["seed"] for r in rows})
    taus = []
    for seed in seeds:
        mine = [r for r in rows if r["seed"] == seed]
        if len(mine) < 3:
            continue
        tau = kendalltau([r["flash"][metric] for r in mine], [r["long"][metric] for r in mine])
        cost = sum(r["long_s"] for r in mine) / sum(r["flash_s"] for r in mine)
        taus.append(tau.statistic)
        others = "; ".join(f"on {o}: {t.statistic:.3f} (p = {t.pvalue:.4f})" for o, t in other_taus(mine, metric))
        lines.append(f"seed {seed}: {len(mine)} students; Kendall tau flash vs {factor:g}x on {metric}: "
                     f"{tau.statistic:.3f} (p = {tau.pvalue:.4f}); {others}; cost ratio long / flash {cost:.1f}x "
                     f"(flash {np.mean([r['flash_s'] for r in mine]):.1f} s per student)")
        lines.append(f"  {size_taus(mine, metric)}")
        if floors and seed in floors and metric == "mlm_accuracy":
            flash = [r["flash"][metric] for r in mine]
            lines.append(f"  commonest-token answer scores {floors[seed]:.4f} on the same masked tokens; flash "
                         f"{min(flash):.4f}-{max(flash):.4f}, long {min(r['long'][metric] for r in mine):.4f}-"
                         f"{max(r['long'][metric] for r in mine):.4f}")
    if taus:
        verdict = "met" if min(taus) >= TARGET_TAU else "not met"
        lines.append(f"mean tau on {metric} over {len(taus)} seed(s): {np.mean(taus):.3f} "
                     f"(target >= {TARGET_TAU} at every seed: {verdict})")
    if len(seeds) >= 2:
        first = {name(r["config"]): r for r in rows if r["seed"] == seeds[0]}
        second = {name(r["config"]): r for r in rows if r["seed"] == seeds[1]}
        both = sorted(set(first) & set(second))
        if len(both) >= 3:
            noise = kendalltau([first[k]["flash"][metric] for k in both], [second[k]["flash"][metric] for k in both])
            longs = kendalltau([first[k]["long"][metric] for k in both], [second[k]["long"][metric] for k in both])
            lines.append(f"seed {seeds[0]} vs seed {seeds[1]} on the same {len(both)} students: flash tau "
                         f"{noise.statistic:.3f}, long tau {longs.statistic:.3f} (training noise of each ranking)")
    by_student = {name(r["config"]): r for r in rows}
    if len(by_student) >= 3:
        pool = list(by_student.values())
        rho = spearmanr([r["latency_ms"] for r in pool], [r["flops"] for r in pool])
        quiet = sum(r["latency_cv"] <= MAX_CV for r in rows) / len(rows)
        lines.append(f"latency vs FLOPs over {len(pool)} students: Spearman rho {rho.statistic:.3f} "
                     f"(p = {rho.pvalue:.2g}); latency {min(r['latency_ms'] for r in pool):.2f}-"
                     f"{max(r['latency_ms'] for r in pool):.2f} ms; CV <= {MAX_CV:.0%} in {quiet:.0%} of "
                     f"{len(rows)} measurements")
    return lines


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (VALUE in YAML: 0.9, masked, true) -> trainer option overrides; one-line errors."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--flash-set takes KEY=VALUE pairs, got {pair!r}: e.g. --flash-set alpha=0.9")
        if key not in {f.name for f in dataclasses.fields(FlashDistillOptions)}:
            raise SystemExit(f"--flash-set: {key!r} is not a flash_distill option: see trainers/autodistill/trainer.py")
        overrides[key] = yaml.safe_load(value)
    return overrides


def variant_rows(args: argparse.Namespace, space: AutoDistillSpace, variant: FlashDistillOptions, metric: str,
                 rows: list[dict[str, Any]], blocks: dict[int, tuple[torch.Tensor, torch.Tensor]],
                 suffix: str) -> list[dict[str, Any]]:
    """Rows of --out with the flash redone under the `variant` options (a re-split of the steps,
    another loss weight...; the cost ratio says what it costs) on its own `blocks`, the long run kept;
    resumable like the main run. Sets args.out / args.results to the variant's (`suffix` after their
    stems). A variant that changes `eval_blocks` scores the flash on more held-out blocks than the
    long run was scored on."""
    args.out = args.out.with_name(f"{args.out.stem}{suffix}.jsonl")
    args.results = args.results.with_name(f"{args.results.stem}{suffix}.txt")
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    for row in rows:
        if args.summary or any(d["seed"] == row["seed"] and d["config"] == row["config"] for d in done):
            continue
        flash, seconds = distil(space, row["config"], variant, 1.0, row["seed"], blocks[row["seed"]])
        done.append(append_row(args, row | {"flash": flash, "flash_s": seconds}, metric))
    return done


def append_row(args: argparse.Namespace, row: dict[str, Any], metric: str) -> dict[str, Any]:
    """Append one finished row to --out (a rerun continues after it) and print its table line."""
    with args.out.open("a") as out:
        out.write(json.dumps(row) + "\n")
    print(summary([row], metric, args.factor)[1], flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "autodistill.yaml")
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "flash_fidelity.jsonl")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "flash_fidelity.txt",
                        help="where the summary is written")
    parser.add_argument("--summary", action="store_true", help="print the tables of --out and train nothing")
    parser.add_argument("--split", type=int, nargs=2, metavar=("STEPS_PER_BLOCK", "PRETRAIN_STEPS"),
                        help="rank another split of the flash steps against the long runs already in --out (same "
                             "students and seeds); rows in <out>_split_<S>+<P>.jsonl, summary in <results>_split_<S>+<P>.txt")
    parser.add_argument("--flash-set", nargs="+", metavar="KEY=VALUE", default=[],
                        help="rank a flash with these trainer options changed (e.g. alpha=0.9 hidden_input=masked) "
                             "against the long runs already in --out; rows in <out>_<KEY>=<VALUE>....jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space, opts, metric = load_study(args.study)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.is_file() else []
    depth = "/".join(map(str, space.values["num_blocks"]))
    header = (f"# {args.study.name}: ranking by {metric}; flash {opts.steps_per_block} steps per block + "
              f"{opts.pretrain_steps} pre-training steps, long {args.factor:g}x; {depth} blocks; "
              f"batch {opts.batch_size}, seq {opts.seq_len}, {opts.eval_blocks} held-out blocks; latency batch "
              f"{opts.latency_batch}, seq {opts.latency_seq_len}, {opts.latency_repeats} repeats under the host lock; "
              f"{args.threads} thread(s)")
    print(header, flush=True)
    overrides = parse_overrides(args.flash_set)
    suffix = "".join(f"_{k}={v}" for k, v in overrides.items())
    if args.split:
        overrides |= {"steps_per_block": args.split[0], "pretrain_steps": args.split[1]}
        suffix = f"_split_{args.split[0]}+{args.split[1]}" + suffix
    # The flash being ranked: the study's, or a variant of it (whose held-out blocks score it).
    ranked = build_options(FlashDistillOptions, {**dataclasses.asdict(opts), **overrides}) if overrides else opts
    teacher = shared_teacher(opts.teacher, "cpu")
    blocks = {seed: corpus_blocks(ranked, teacher, seed) for seed in sorted({*args.seeds, *(r["seed"] for r in rows)})}
    flash = ranked.flash_config()
    floors = {seed: frequent_token_accuracy(teacher.tokenizer, valid, flash.mask_prob, seed, flash.batch_size)
              for seed, (_, valid) in blocks.items()}
    if overrides:
        long_from = args.out.name
        rows = variant_rows(args, space, ranked, metric, rows, blocks, suffix)
        header += f"\n# flash with {', '.join(f'{k}={v}' for k, v in overrides.items())}; long runs from {long_from}"
    elif not args.summary:
        students = spread_students(space, args.students)
        # Student by student, every seed of one before the next, so a run stopped early ranks the same pool per seed.
        for config in students:
            for seed in args.seeds:
                if any(r["seed"] == seed and r["config"] == config for r in rows):
                    continue
                rows.append(append_row(args, measure_student(space, config, opts, metric, args.factor, seed,
                                                             blocks[seed]), metric))
    lines = summary(rows, metric, args.factor, floors)
    print("\n".join(lines))
    if rows:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        args.results.write_text(f"# OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/flash_fidelity.py "
                                f"{' '.join(sys.argv[1:])}  ({time.strftime('%Y-%m-%d %H:%M')} UTC, 2-core CPU shared "
                                f"with other work; load average now {load}; rows in {args.out.name})\n"
                                f"{header}\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
