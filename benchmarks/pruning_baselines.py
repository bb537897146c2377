"""The structural-pruning baselines against the weight-sharing search on a shipped task, over seeds
(structural-pruning-via-nas.txt §4.2, Fig. 8).

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/pruning_baselines.py --threads 1 --seeds 3 &  # CPU scale, resumable
    .venv/bin/python benchmarks/pruning_baselines.py --paper-scale           # all data, 128 tokens, 5 epochs

Every method gets the same data and the same fine-tuning settings, per seed: layer dropping fine-tunes
one model per depth from the pre-trained weights; head pruning and Fisher pruning start from one
fine-tuning of the full model and prune it without retraining; the weight-sharing search fine-tunes
the model once as a super-network with the `full` strategy (sandwich rule, in-place distillation)
and scores `--subnets` random SMALL sub-networks on its shared weights (what a random search of that
many trials sees). As in the paper, parameters are normalised by the full model's and, for each bin
"at most x of the parameters", the best validation accuracy in it is reported; the full fine-tuned
model is the named baseline. The pooling and learning rate are the quickstart's.

Every model's row is appended to `--out` (CSV) as each (seed, method) ends, so a rerun continues;
the table (median and range over seeds per bin, and a line per bin on whether the weight-sharing
search's seeds and the best baseline's overlap) goes to `--results`.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.supernet_strategies import earlier_points, train_with_strategy  # noqa: E402
from search_spaces.pruning import SmallSpace  # noqa: E402
from search_spaces.sub_network import count_params  # noqa: E402
from trainers.autodistill.finetune import accuracy  # noqa: E402
from trainers.baselines import (BaselineData, FisherPruningOptions, HeadPruningOptions,  # noqa: E402
                                LayerDroppingOptions, fisher_pruning, head_pruning, layer_dropping)
from trainers.baselines.common import fine_tune  # noqa: E402
from trainers.data import load_model_dir, load_task  # noqa: E402
from trainers.encode import encode  # noqa: E402
from trainers.supernet import SuperNetwork  # noqa: E402
from trainers.supernet.options import FinetuneOptions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("full", "layer_dropping", "head_pruning", "fisher_pruning", "weight_sharing")
BINS = (0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)


def weight_sharing(pretrained: SuperNetwork, data: BaselineData, options: FinetuneOptions, seed: int,
                   subnets: int) -> pd.DataFrame:
    """The search's view: the model trained once as a super-network (`full` strategy), `subnets`
    random SMALL sub-networks scored on its shared weights."""
    supernet = copy.deepcopy(pretrained)
    space = SmallSpace(**asdict(supernet.shape))
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(subnets)]  # drawn before training: independent of it
    train_with_strategy(supernet, space, data.train, "full", options, seed, rng, num_random=2, temperature=10.0)
    rows = []
    for config in configs:
        sub = space.architecture(config)
        supernet.set_sub_network(sub)
        rows.append({"method": "weight_sharing", "accuracy": accuracy(supernet, data.validation, 128),
                     **count_params(supernet.shape, sub)})
    supernet.reset_super_network()
    return pd.DataFrame(rows)


def full_model_row(model: SuperNetwork, data: BaselineData) -> pd.DataFrame:
    space = SmallSpace(**asdict(model.shape))
    return pd.DataFrame([{"method": "full", "accuracy": accuracy(model, data.validation, 128),
                          **count_params(model.shape, space.architecture(space.largest()))}])


def run_seed(args: argparse.Namespace, seed: int, methods: list[str]) -> Iterator[tuple[str, pd.DataFrame, float]]:
    """Each of `methods` on one seed's data, as it ends: its name, rows and seconds."""
    task, tokenizer = load_task(args.data, args.model, seed=seed)
    enc = {split: encode(task, tokenizer, max_length=args.max_length, seed=seed, splits=(split,), max_examples=n)[split]
           for split, n in (("train", args.train_examples), ("validation", args.eval_examples))}
    data = BaselineData(enc["train"], enc["validation"])
    options = FinetuneOptions(model=args.model, task=args.data, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    pretrained = SuperNetwork.from_pretrained(load_model_dir(args.model), num_labels=task.num_labels, seed=seed,
                                              pooling=args.pooling)
    cache: list[SuperNetwork] = []

    def finetuned() -> SuperNetwork:
        """The full model fine-tuned once per seed: the full baseline, and where the pruners start."""
        if not cache:
            model = copy.deepcopy(pretrained)
            fine_tune(model, data.train, options, seed)
            cache.append(model)
        return cache[0]

    runs: dict[str, Callable[[], pd.DataFrame]] = {
        "full": lambda: full_model_row(finetuned(), data),
        "layer_dropping": lambda: layer_dropping(pretrained, data, LayerDroppingOptions(finetune=options, seed=seed)),
        "head_pruning": lambda: head_pruning(finetuned(), data, HeadPruningOptions(importance_examples=args.calibration_examples)),
        "fisher_pruning": lambda: fisher_pruning(finetuned(), data,
                                                 FisherPruningOptions(calibration_examples=args.calibration_examples)),
        "weight_sharing": lambda: weight_sharing(pretrained, data, options, seed, args.subnets),
    }
    for name in methods:
        t0 = time.perf_counter()
        frame = runs[name]()
        yield name, frame.drop(columns=[c for c in ("sub_network", "config") if c in frame.columns]), time.perf_counter() - t0


def table(rows: pd.DataFrame) -> str:
    """Per method and bin: median [min-max] over seeds of the best accuracy with share <= bin."""
    rows = rows.copy()
    rows["share"] = rows["params_non_embedding"] / rows.groupby("seed")["params_non_embedding"].transform("max")
    best = {(m, b): rows[(rows["method"] == m) & (rows["share"] <= b + 1e-9)].groupby("seed")["accuracy"].max()
            for m in rows["method"].unique() for b in BINS}
    full = rows[rows["method"] == "full"].groupby("seed")["accuracy"].max()
    lines = [f"full fine-tuned model: validation accuracy median {full.median():.3f} [{full.min():.3f}-{full.max():.3f}] "
             f"over {len(full)} seed(s)",
             "best validation accuracy with share <= bin, median [min-max] over seeds (share = non-embedding parameters / "
             "the full model's)",
             f"{'method':<16}" + "".join(f"{'<=' + format(b, '.0%'):>20}" for b in BINS) + f"{'seconds':>9}"]
    for m in (x for x in METHODS if x in set(rows["method"])):
        cells = []
        for b in BINS:
            v = best[(m, b)]
            cells.append(f"{v.median():.3f} [{v.min():.3f}-{v.max():.3f}]" if len(v) else "-")
        seconds = rows[rows["method"] == m].groupby("seed")["seconds"].first().median()
        lines.append(f"{m:<16}" + "".join(f"{c:>20}" for c in cells) + f"{seconds:>9.0f}")
    if "weight_sharing" in set(rows["method"]):
        lines.append("weight-sharing search against the best baseline in each bin (by median):")
        for b in BINS:
            ws = best[("weight_sharing", b)]
            others = {m: best[(m, b)] for m in ("layer_dropping", "head_pruning", "fisher_pruning") if len(best.get((m, b), []))}
            if not len(ws) or not others:
                continue
            top = max(others, key=lambda m: others[m].median())
            o = others[top]
            if min(len(ws), len(o)) < 2:
                verdict = "one seed: spread not measured"
            elif ws.min() > o.max():
                verdict = "ahead in every seed"
            elif ws.max() < o.min():
                verdict = "behind in every seed"
            else:
                verdict = "the seeds overlap: no ordering"
            lines.append(f"  <= {b:.0%}: {ws.median():.3f} against {top} {o.median():.3f}: {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="movie-reviews")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--train-examples", type=int, default=1024)
    parser.add_argument("--eval-examples", type=int, default=500)
    parser.add_argument("--calibration-examples", type=int, default=256, help="paper (Kwon et al.): 2,048")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-4, help="the quickstart's")
    parser.add_argument("--pooling", default="mean", choices=("cls", "mean"), help="the quickstart's: mean")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--subnets", type=int, default=100, help="random sub-networks the weight-sharing search scores")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paper-scale", action="store_true", help="all data, 128 tokens, 5 epochs at 2e-5, 2,048 calibration examples")
    parser.add_argument("--out", type=Path, default=RESULTS / "pruning_baselines_points.csv",
                        help="every model's row (appended per seed and method; a rerun skips what is there)")
    parser.add_argument("--results", type=Path, default=RESULTS / "pruning_baselines.txt")
    args = parser.parse_args()
    if args.paper_scale:
        args.max_length, args.epochs, args.lr, args.calibration_examples = 128, 5, 2e-5, 2048
        args.train_examples = args.eval_examples = None
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    settings = (f"{args.data}, {args.model}: {args.train_examples or 'all'} training / {args.eval_examples or 'all'} "
                f"validation examples of {args.max_length} tokens, {args.epochs} epoch(s) at lr {args.lr}, "
                f"{args.pooling} pooling; {args.calibration_examples} calibration examples; {args.subnets} sub-networks")
    rows = earlier_points(parser, args.out, settings)
    done = set() if rows.empty else set(zip(rows["seed"], rows["method"]))
    for seed in range(args.seeds):
        todo = [m for m in methods if (seed, m) not in done]
        if not todo:
            continue
        for name, frame, seconds in run_seed(args, seed, todo):
            rows = pd.concat([rows, frame.assign(seed=seed, seconds=seconds, settings=settings)], ignore_index=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(args.out, index=False)
            print(f"# seed {seed} {name}: {seconds:.0f}s", flush=True)
    rows = rows[rows["method"].isin(methods) & (rows["seed"] < args.seeds)]
    text = f"# command: {' '.join(sys.argv)}\n# {settings}; {args.seeds} seed(s)\n" + table(rows)
    print(text)
    args.results.write_text(text + "\n")


if __name__ == "__main__":
    main()
