"""Does a busy machine change the latency lmnas reports? Wall clock vs the thread's CPU clock.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_clock.py [--busy 3] [--rounds 3]

A 4-layer BERT (hidden 256, batch 1 x 128 tokens, one torch thread) is timed by `measure_latency`
with each clock, first on the quiet machine and then while `--busy` processes spin on the cores
(as other trials' training does on a shared worker). Printed per round: median and CV of both
clocks, quiet and busy, and the busy / quiet ratio of the median (1.0: the load does not show).
Written to benchmarks/results/latency_clock.txt.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel

from trainers.efficiency.latency import Latency, LatencyOptions, measure_latency

ROOT = Path(__file__).resolve().parent.parent


def measure(model: BertModel, clock: str, repeats: int) -> Latency:
    return measure_latency(model, LatencyOptions(repeats=repeats, warmup=3, threads=1, clock=clock))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busy", type=int, default=3, help="spinning processes during the busy measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latency_clock.txt")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512))
    lines = [f"# 4-layer BERT (hidden 256), batch 1 x 128 tokens, 1 thread, {args.repeats} repeats; "
             f"busy = {args.busy} spinning processes on {len(__import__('os').sched_getaffinity(0))} cores",
             f"{'round':>5} {'clock':>6} {'quiet ms':>9} {'cv':>6} {'busy ms':>8} {'cv':>6} {'busy/quiet':>11}"]
    ratios: dict[str, list[float]] = {"wall": [], "thread": []}
    for round_ in range(args.rounds):
        quiet = {clock: measure(model, clock, args.repeats) for clock in ratios}
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(1.0)
            busy = {clock: measure(model, clock, args.repeats) for clock in ratios}
        finally:
            for spinner in spinners:
                spinner.kill()
        for clock in ratios:
            q, b = quiet[clock], busy[clock]
            ratios[clock].append(b.median_ms / q.median_ms)
            lines.append(f"{round_:>5} {clock:>6} {q.median_ms:>9.2f} {q.cv:>6.3f} {b.median_ms:>8.2f} {b.cv:>6.3f} "
                         f"{ratios[clock][-1]:>11.2f}")
    lines.append("")
    for clock, values in ratios.items():
        lines.append(f"{clock:>6}: busy / quiet median {np.mean(values):.2f} (min {min(values):.2f}, max {max(values):.2f})")
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
