"""Does Flash Distillation rank students as a longer distillation does? (autodistill.txt §4.7, Fig. 6)

    nice .venv/bin/python benchmarks/flash_fidelity.py                       # 8 students, 10+30 vs 100+300 steps (~25 min)
    nice .venv/bin/python benchmarks/flash_fidelity.py --steps-per-block 2 --pretrain-steps 6   # too short a flash: see below
    nice .venv/bin/python benchmarks/flash_fidelity.py --students 12 --steps-per-block 20 --pretrain-steps 60

Students: the smallest and the largest of the `cpu` space and random others (seed 0). Each is
Flash-distilled (`--steps-per-block` per block, `--pretrain-steps` of pre-training distillation)
and, from the same start, distilled `--factor` times longer with the same schedule (the regular
distillation of `trainers/autodistill/regular.py`). Both read the teacher's outputs from tables in
$LMNAS_HOME/teacher_outputs (the long plan's is `--factor` times larger), so the costs compared
are the students' own. Printed: each student's held-out agreement (and masked-token accuracy) after
both, the Kendall tau of the two rankings (target >= 0.6) and the cost ratio (long / flash).

Measured (benchmarks/results/flash_fidelity*.txt): 10+30 steps against 100+300 ranks the 8 students
with tau 0.857 by held-out agreement at 9.8x less cost; 2+6 against 20+60 gives tau -0.857: so short
a flash favours the small students, which start closer to their (lower) plateau. The study's flash
(20+60 steps) is above the length that ranks well.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from search_spaces.autodistill import AutoDistillSpace
from trainers.autodistill.embedding_init import init_embeddings_from_teacher
from trainers.autodistill.regular import regular_config
from trainers.autodistill.student import Student
from trainers.autodistill.trainer import FlashDistillOptions, corpus_blocks, teacher_cache_file
from trainers.distill.flash import flash_distill
from trainers.distill.teacher import shared_teacher
from trainers.distill.teacher_cache import TeacherTargets

TARGET_TAU = 0.6


def students(space: AutoDistillSpace, count: int, seed: int) -> list[dict[str, Any]]:
    """The smallest, the largest, then distinct random configurations."""
    chosen = [space.smallest(), space.largest()]
    rng = np.random.default_rng(seed)
    while len(chosen) < count:
        config = space.sample(rng)
        if config not in chosen:
            chosen.append(config)
    return chosen[:count]


def distil(space: AutoDistillSpace, config: dict[str, Any], opts: FlashDistillOptions, factor: float,
           blocks: tuple[torch.Tensor, torch.Tensor]) -> tuple[dict[str, float], float, int]:
    """Final metrics, seconds and teacher runs (table misses) of one distillation (`factor` 1: Flash Distillation)."""
    arch = space.arch(config)
    teacher = shared_teacher(opts.teacher, "cpu")
    flash = opts.flash_config()
    schedule = flash if factor == 1 else regular_config(flash, factor)
    plan = replace(opts, steps_per_block=schedule.steps_per_block, pretrain_steps=schedule.pretrain_steps)
    targets = TeacherTargets(teacher, teacher_cache_file(plan, arch, 0))
    torch.manual_seed(0)
    student = Student(arch)
    init_embeddings_from_teacher(student, teacher.embedding_tables())
    start = time.perf_counter()
    result = flash_distill(student, teacher, *blocks, schedule, lambda m: None, seed=0, targets=targets)
    seconds = time.perf_counter() - start
    targets.save()
    return result.metrics, seconds, targets.misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--steps-per-block", type=int, default=10)
    parser.add_argument("--pretrain-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="which random students")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = AutoDistillSpace(preset="cpu")
    opts = FlashDistillOptions(steps_per_block=args.steps_per_block, pretrain_steps=args.pretrain_steps,
                               warmup_steps=max(1, args.pretrain_steps // 10))
    blocks = corpus_blocks(opts, shared_teacher(opts.teacher, "cpu"), 0)
    print(f"# {args.students} students of the cpu space; flash: {args.steps_per_block} steps per block + "
          f"{args.pretrain_steps} pre-training steps; long: {args.factor:g}x; batch {opts.batch_size}, "
          f"seq {opts.seq_len}, {opts.eval_blocks} held-out blocks, {args.threads} thread(s)")
    print(f"{'student (h, b, heads, i, ffn)':<30}{'flash agr':>10}{'long agr':>10}{'flash mlm':>10}{'long mlm':>10}"
          f"{'flash s':>9}{'long s':>9}")
    rows = []
    for config in students(space, args.students, args.seed):
        short, short_s, short_misses = distil(space, config, opts, 1.0, blocks)
        long, long_s, long_misses = distil(space, config, opts, args.factor, blocks)
        rows.append((short, long, short_s, long_s, short_misses + long_misses == 0))
        name = "_".join(str(config[k]) for k in ("hidden_size", "bottleneck_size", "num_heads",
                                                  "intermediate_size", "num_ffn"))
        print(f"{name:<30}{short['agreement']:>10.3f}{long['agreement']:>10.3f}{short['mlm_accuracy']:>10.3f}"
              f"{long['mlm_accuracy']:>10.3f}{short_s:>9.0f}{long_s:>9.0f}"
              f"{'' if rows[-1][4] else '  (filled a teacher table)'}", flush=True)
    tau_agreement = kendalltau([r[0]["agreement"] for r in rows], [r[1]["agreement"] for r in rows])
    tau_mlm = kendalltau([r[0]["mlm_accuracy"] for r in rows], [r[1]["mlm_accuracy"] for r in rows])
    # Students whose runs filled a teacher table also paid for the teacher: left out of the ratio.
    timed = [r for r in rows if r[4]] or rows
    cost = sum(r[3] for r in timed) / sum(r[2] for r in timed)
    verdict = "met" if tau_agreement.statistic >= TARGET_TAU else "not met"
    print(f"\nKendall tau, flash vs {args.factor:g}x ranking by held-out agreement: {tau_agreement.statistic:.3f} "
          f"(p = {tau_agreement.pvalue:.3f}; target >= {TARGET_TAU}: {verdict})")
    print(f"Kendall tau by masked-token accuracy: {tau_mlm.statistic:.3f} (p = {tau_mlm.pvalue:.3f})")
    print(f"cost ratio (long / flash student seconds over {len(timed)} students whose teacher outputs came from "
          f"tables): {cost:.1f}x")


if __name__ == "__main__":
    main()
