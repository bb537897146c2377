"""How stable is one latency measurement on this machine when nothing else runs? (the floor of `latency_cv`)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_floor.py [--loops 5]

MiniLM-shaped BERTs of 1, 3 and 6 layers (hidden 384, 12 heads, FFN 1,536; batch 1 x 32 tokens, the
quickstart's latency shape) are timed by `measure_latency` as a trial times them (thread CPU clock,
30 samples, the host lock) `--loops` times in a row, with samples of at least 2 ms (the default) and of
at least 10 ms. Printed per setting: the CV of each loop, and the spread of the loops' medians (how far
apart two measurements of one network land). Run it with nothing else on the machine: the figures are
the floor a search's `latency_cv` cannot go below. Written to benchmarks/results/latency_floor.txt.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel

from trainers.efficiency.latency import LatencyOptions, measure_latency

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latency_floor.txt")
    args = parser.parse_args()
    torch.manual_seed(0)
    lines = [f"# {' '.join(sys.argv)}  ({platform.machine()}, {os.cpu_count()} cores, load average "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; batch 1 x 32 tokens, {args.repeats} samples, 1 thread)",
             f"{'layers':>6}{'min ms':>8}{'fwd/sample':>11}  {'CV of each loop':<40}{'median ms':>10}{'medians spread':>16}"]
    for layers in (1, 3, 6):
        model = BertModel(BertConfig(hidden_size=384, num_hidden_layers=layers, num_attention_heads=12,
                                     intermediate_size=1536))
        for min_ms in (2.0, 10.0):
            runs = [measure_latency(model, LatencyOptions(seq_len=32, repeats=args.repeats, min_sample_ms=min_ms))
                    for _ in range(args.loops)]
            cvs = " ".join(f"{r.cv:.3f}" for r in runs)
            medians = np.array([r.median_ms for r in runs])
            lines.append(f"{layers:>6}{min_ms:>8.0f}{runs[-1].forwards_per_sample:>11}  {cvs:<40}"
                         f"{np.median(medians):>10.2f}{np.ptp(medians) / np.median(medians):>15.1%}")
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
