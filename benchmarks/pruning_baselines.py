"""The structural-pruning baselines on a shipped task: their Pareto sets side by side
(structural-pruning-via-nas.txt §4.2, Fig. 8).

    nice .venv/bin/python benchmarks/pruning_baselines.py                    # CPU scale, minutes
    .venv/bin/python benchmarks/pruning_baselines.py --paper-scale           # all data, 128 tokens, 5 epochs

Every method gets the same data and the same fine-tuning settings: layer dropping fine-tunes one
model per depth from the pre-trained weights; head pruning and Fisher pruning start from one
fine-tuning of the full model and prune it without retraining. As in the paper, parameters are
normalised by the full model's and, for each bin "at most x of the parameters", the best
validation accuracy in it is reported; the full fine-tuned model is the named baseline.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import pandas as pd
import torch

from orchestrator.pareto import non_dominated_mask

from trainers.autodistill.finetune import accuracy
from trainers.baselines import (BaselineData, FisherPruningOptions, HeadPruningOptions, LayerDroppingOptions, fisher_pruning,
                                head_pruning, layer_dropping)
from trainers.baselines.common import fine_tune
from trainers.data import load_model_dir, load_task
from trainers.encode import encode
from trainers.supernet import SuperNetwork
from trainers.supernet.options import FinetuneOptions

BINS = (0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="movie-reviews")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--train-examples", type=int, default=1024)
    parser.add_argument("--eval-examples", type=int, default=500)
    parser.add_argument("--calibration-examples", type=int, default=256, help="paper (Kwon et al.): 2,048")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paper-scale", action="store_true", help="all data, 128 tokens, 5 epochs at 2e-5, 2,048 calibration examples")
    parser.add_argument("--out", default=None, help="write every pruned model's row to this CSV")
    args = parser.parse_args()
    if args.paper_scale:
        args.max_length, args.epochs, args.lr, args.calibration_examples = 128, 5, 2e-5, 2048
        args.train_examples = args.eval_examples = None
    torch.set_num_threads(args.threads)

    task, tokenizer = load_task(args.data, args.model, seed=args.seed)
    enc = {split: encode(task, tokenizer, max_length=args.max_length, seed=args.seed, splits=(split,), max_examples=n)[split]
           for split, n in (("train", args.train_examples), ("validation", args.eval_examples))}
    data = BaselineData(enc["train"], enc["validation"])
    options = FinetuneOptions(model=args.model, task=args.data, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    pretrained = SuperNetwork.from_pretrained(load_model_dir(args.model), num_labels=task.num_labels, seed=args.seed)

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    finetuned = copy.deepcopy(pretrained)
    fine_tune(finetuned, data.train, options, args.seed)
    seconds["fine-tune full"] = time.perf_counter() - t0
    full_acc = accuracy(finetuned, data.validation, 128)
    frames = []
    for name, run in (
        ("layer_dropping", lambda: layer_dropping(pretrained, data, LayerDroppingOptions(finetune=options, seed=args.seed))),
        ("head_pruning", lambda: head_pruning(finetuned, data, HeadPruningOptions(importance_examples=args.calibration_examples))),
        ("fisher_pruning", lambda: fisher_pruning(finetuned, data, FisherPruningOptions(calibration_examples=args.calibration_examples))),
    ):
        t0 = time.perf_counter()
        frames.append(run())
        seconds[name] = time.perf_counter() - t0
        print(f"# {name}: {seconds[name]:.0f}s", flush=True)
    rows = pd.concat(frames, ignore_index=True)
    # Each method's Pareto set: no other row of it has fewer parameters and a higher accuracy.
    rows["pareto"] = False
    for _, frame in rows.groupby("method", sort=False):
        points = np.stack([frame["params"].to_numpy(float), -frame["accuracy"].to_numpy(float)], axis=1)
        rows.loc[frame.index, "pareto"] = non_dominated_mask(points)
    full_params = float(rows["params_non_embedding"].max())
    rows["share"] = rows["params_non_embedding"] / full_params
    if args.out:
        rows.drop(columns=["sub_network"]).to_csv(args.out, index=False)

    print(f"# {args.data}, {args.model}: {len(data.train)} training / {len(data.validation)} validation examples of "
          f"{args.max_length} tokens, {args.epochs} epoch(s) at lr {args.lr}; full fine-tuned model: accuracy {full_acc:.3f} "
          f"({seconds['fine-tune full']:.0f}s); share = non-embedding parameters / the full model's")
    print("best validation accuracy with share <= bin (ratio to the full fine-tuned model)")
    print(f"{'method':<16}" + "".join(f"{'<=' + format(b, '.0%'):>14}" for b in BINS) + f"{'seconds':>9}")
    for name, frame in rows.groupby("method", sort=False):
        cells = []
        for b in BINS:
            inside = frame[frame["share"] <= b + 1e-9]["accuracy"]
            cells.append(f"{inside.max():.3f} ({inside.max() / full_acc:.2f})" if len(inside) else "-")
        print(f"{name:<16}" + "".join(f"{c:>14}" for c in cells) + f"{seconds[name]:>9.0f}")
    print("Pareto sets (share, accuracy):")
    for name, frame in rows[rows["pareto"]].groupby("method", sort=False):
        print(f"  {name}: " + ", ".join(f"({s:.2f}, {a:.3f})" for s, a in zip(frame["share"], frame["accuracy"])))


if __name__ == "__main__":
    main()
