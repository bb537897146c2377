"""Per-trial cost of the flash_distill trainer with the live teacher against the teacher-output table.

    nice .venv/bin/python benchmarks/teacher_cache.py                        # the study's step counts
    nice .venv/bin/python benchmarks/teacher_cache.py --steps-per-block 10 --pretrain-steps 30

Whole trials (`trainers/autodistill/trainer.py`: Flash Distillation, the fine-tuning probe, the
latency measurement) of `--students` students of the `cpu` space, one thread: first every student
with `teacher_cache: false` (the baseline: each trial runs the teacher), then every student with
the table in an empty temporary folder, so the first trial fills it and the others read it. The
table file's size is printed too.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_spaces.autodistill import AutoDistillSpace
from trainers.autodistill import trainer
from trainers.contract import TrialContext


def trial(space: AutoDistillSpace, config: dict[str, Any], options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    metrics = trainer.train(TrialContext("bench", config, space, options, seed=0), lambda m: None)
    return time.perf_counter() - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--steps-per-block", type=int, default=20)
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument("--finetune-steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = AutoDistillSpace(preset="cpu")
    rng = np.random.default_rng(0)
    configs = [space.smallest()] + [space.sample(rng) for _ in range(args.students - 1)]
    base = {"steps_per_block": args.steps_per_block, "pretrain_steps": args.pretrain_steps,
            "finetune_steps": args.finetune_steps, "device": "cpu", "latency_threads": 1}
    live = [trial(space, c, {**base, "teacher_cache": False})[0] for c in configs]
    with tempfile.TemporaryDirectory(prefix="teacher-cache-") as tmp:
        cached = [trial(space, c, {**base, "teacher_cache_dir": tmp})[0] for c in configs]
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    print(f"# {args.students} students of the cpu space, {args.steps_per_block} steps per block, "
          f"{args.pretrain_steps} pre-training steps, {args.finetune_steps} fine-tuning steps, 1 thread")
    print(f"{'student':<24}{'live teacher s':>15}{'table s':>10}{'speed-up':>10}")
    for i, config in enumerate(configs):
        name = "_".join(str(config[k]) for k in ("hidden_size", "bottleneck_size", "num_heads",
                                                  "intermediate_size", "num_ffn"))
        role = " (fills the table)" if i == 0 else ""
        print(f"{name:<24}{live[i]:>15.1f}{cached[i]:>10.1f}{live[i] / cached[i]:>9.2f}x{role}")
    reads = range(1, len(configs))
    if reads:
        ratio = sum(live[i] for i in reads) / sum(cached[i] for i in reads)
        print(f"\nper-trial speed-up of trials reading the table (baseline: live teacher): {ratio:.2f}x")
    print(f"table file: {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
