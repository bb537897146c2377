"""Evaluation time of SMALL sub-networks on the shared weights, against the full network and
against each one's extracted dense twin (issue 3, item 9).

    nice .venv/bin/python benchmarks/subnet_eval.py --repeats 15

Sub-networks keep all layers and about 25 / 50 / 75 / 100 % of the heads and FFN units of each
(so about that share of the non-embedding parameters). One evaluation is a pass over the same
validation batches (real movie-review sentences, tokenised once, outside the clock); the
restricted super-network's time includes `set_sub_network`. Every repeat times every (variant,
sub-network) once in a fresh random order, so drift on a shared machine hits them all alike; the
table gives medians and the ratios the targets are stated in: a 25 % sub-network costs at most
0.45x the full network and at most 1.15x its twin.
"""
from __future__ import annotations

import argparse
import gc
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from search_spaces.pruning import SmallSpace
from search_spaces.sub_network import count_params
from trainers.data import load_model_dir, load_task
from trainers.efficiency import hardware_label
from trainers.encode import Encoded, encode
from trainers.supernet import CompactBert, SubNetwork, SuperNetwork

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
#: the targets of the issue, for the 25 % sub-network.
MAX_VS_FULL, MAX_VS_TWIN = 0.45, 1.15


@dataclass(frozen=True)
class Candidate:
    fraction: float
    config: dict[str, int]
    sub: SubNetwork
    params_non_embedding: int


def candidates(space: SmallSpace, fractions: tuple[float, ...]) -> list[Candidate]:
    """All layers, the first round(f * H) heads and round(f * I) units of each."""
    s = space.shape
    full = count_params(s, SubNetwork.full(s))["params_non_embedding"]
    out = []
    for f in fractions:
        config = {"num_layers": s.num_layers, "num_heads": max(1, round(f * s.num_heads)), "num_units": max(1, round(f * s.intermediate_size))}
        sub = space.architecture(config)
        out.append(Candidate(count_params(s, sub)["params_non_embedding"] / full, config, sub, count_params(s, sub)["params_non_embedding"]))
    return out


def evaluate(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for ids, mask in batches:
        model(ids, mask)


def timed(run: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    run()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--data", default="movie-reviews")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=2, help="validation batches per evaluation")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task, tokenizer = load_task(args.data, args.model)
    val: Encoded = encode(task, tokenizer, max_length=args.seq_len, max_examples=args.batch * args.batches, splits=("validation",))["validation"]
    batches = [(val.input_ids[i:i + args.batch], val.attention_mask[i:i + args.batch]) for i in range(0, len(val), args.batch)]
    supernet = SuperNetwork.from_pretrained(load_model_dir(args.model), num_labels=task.num_labels).eval()
    space = SmallSpace(**asdict(supernet.shape))
    subs = candidates(space, FRACTIONS)
    twins: dict[float, CompactBert] = {c.fraction: supernet.extract_sub_network(c.sub).eval() for c in subs}

    def restricted(c: Candidate) -> Callable[[], None]:
        def run() -> None:
            supernet.set_sub_network(c.sub)
            evaluate(supernet, batches)
        return run

    def full() -> None:
        supernet.reset_super_network()
        evaluate(supernet, batches)

    jobs: dict[tuple[str, float], Callable[[], None]] = {("full", 1.0): full}
    for c in subs:
        jobs[("restricted", c.fraction)] = restricted(c)
        jobs[("twin", c.fraction)] = (lambda m: lambda: evaluate(m, batches))(twins[c.fraction])
    keys = list(jobs)
    times: dict[tuple[str, float], list[float]] = {k: [] for k in keys}
    rng = np.random.default_rng(args.seed)
    gc.disable()
    with torch.inference_mode():
        for _ in range(args.warmup):
            for k in keys:
                jobs[k]()
        for _ in range(args.repeats):
            for i in rng.permutation(len(keys)):
                times[keys[i]].append(timed(jobs[keys[i]]))
    gc.enable()
    med = {k: float(np.median(v)) for k, v in times.items()}
    full_ms = med[("full", 1.0)]

    def paired(a: tuple[str, float], b: tuple[str, float]) -> float:
        """Median over repeats of a / b timed in the same round: robust to load drifting between rounds."""
        return float(np.median(np.array(times[a]) / np.array(times[b])))

    print(f"# {hardware_label('cpu')}, {args.threads} thread(s), {len(batches)} x {args.batch} sentences of {args.seq_len} tokens, "
          f"{args.repeats} interleaved repeats, medians; model {args.model}, non-embedding params {subs[-1].params_non_embedding:,}")
    print("ratios are medians of per-round ratios (both timed in the same round)")
    print(f"{'target':>6} {'share':>6} {'L/H/I':>11} {'restricted ms':>14} {'twin ms':>9} {'full ms':>9} {'restr/full':>10} {'restr/twin':>10} {'twin/full':>9}")
    for f, c in zip(FRACTIONS, subs):
        r, t = med[("restricted", c.fraction)], med[("twin", c.fraction)]
        rf, rt, tf = (paired(("restricted", c.fraction), ("full", 1.0)), paired(("restricted", c.fraction), ("twin", c.fraction)),
                      paired(("twin", c.fraction), ("full", 1.0)))
        shape = f"{c.config['num_layers']}/{c.config['num_heads']}/{c.config['num_units']}"
        print(f"{f:>6.0%} {c.fraction:>6.1%} {shape:>11} {r:>14.1f} {t:>9.1f} {full_ms:>9.1f} {rf:>10.3f} {rt:>10.3f} {tf:>9.3f}")
    small = subs[0]
    vs_full = paired(("restricted", small.fraction), ("full", 1.0))
    vs_twin = paired(("restricted", small.fraction), ("twin", small.fraction))
    print(f"target 25%: restricted/full {vs_full:.3f} <= {MAX_VS_FULL} {'met' if vs_full <= MAX_VS_FULL else 'MISSED'}; "
          f"restricted/twin {vs_twin:.3f} <= {MAX_VS_TWIN} {'met' if vs_twin <= MAX_VS_TWIN else 'MISSED'}")


if __name__ == "__main__":
    main()
