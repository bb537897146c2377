"""Hypervolume of the same random SMALL sub-networks after each super-network training strategy
(structural-pruning-via-nas.txt §4.1.3, Fig. 7).

    OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/supernet_strategies.py --threads 1 --seeds 3 &  # CPU scale, resumable
    .venv/bin/python benchmarks/supernet_strategies.py --paper-scale          # all data, 128 tokens, 5 epochs, 10 seeds

For each data set and seed, MiniLM-L6 is fine-tuned as a super-network once per strategy (the
project's loop: AdamW, linear decay, clipping; `trainers/strategies`), then the same `--subnets`
random SMALL sub-networks (drawn from the seed, shared by every strategy) are scored on the shared
weights: validation error and parameters. As in the paper (§4.1), both objectives are
quantile-normalised over every point of a data set (all strategies and seeds) and the
hypervolume is taken against the reference point (1, 1) plus `--margin`; the table gives mean and
standard deviation over seeds, the median and range over seeds, and the ratio to `standard`
fine-tuning (the named baseline). Under each data set's table a line says whether the seeds disagree
more than the strategies do (the range of one strategy's seeds against the gap between strategies'
medians), in which case the ordering is not evidence.

Every scored sub-network is appended to `--out` (CSV, default
benchmarks/results/supernet_strategies_points.csv) as each (data set, seed, strategy) ends; a rerun
with the same settings skips what is there. The table goes to `--results` (default
benchmarks/results/supernet_strategies.txt).
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from orchestrator.pareto import hypervolume
from search_spaces.pruning import SmallSpace
from search_spaces.sub_network import count_params
from trainers.autodistill.finetune import accuracy
from trainers.data import load_model_dir, load_task
from trainers.encode import Encoded, encode
from trainers.strategies import STRATEGIES, make_strategy, strategy_options
from trainers.supernet import SuperNetwork
from trainers.supernet.fit import fit
from trainers.supernet.options import FinetuneOptions

BASELINE = "standard"
RESULTS = Path(__file__).resolve().parent / "results"


@functools.cache
def splits(model: str, data: str, seed: int, max_length: int, train_n: int | None, val_n: int | None) -> tuple[Encoded, Encoded, int]:
    """(train, validation, number of labels), at most `train_n` / `val_n` examples (None: all)."""
    task, tokenizer = load_task(data, model, seed=seed)
    train = encode(task, tokenizer, max_length=max_length, seed=seed, splits=("train",), max_examples=train_n)["train"]
    val = encode(task, tokenizer, max_length=max_length, seed=seed, splits=("validation",), max_examples=val_n)["validation"]
    return train, val, task.num_labels


def run_one(args: argparse.Namespace, data: str, seed: int, strategy: str) -> pd.DataFrame:
    """Train one super-network and score the seed's sub-networks on it: one row per sub-network."""
    sizes = (None, None) if args.paper_scale else (args.train_examples, args.eval_examples)
    train, val, num_labels = splits(args.model, data, seed, args.max_length, *sizes)
    supernet = SuperNetwork.from_pretrained(load_model_dir(args.model), num_labels=num_labels, seed=seed,
                                            pooling=args.pooling)
    space = SmallSpace(**asdict(supernet.shape))
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(args.subnets)]  # drawn first: the same for every strategy
    options = FinetuneOptions(model=args.model, task=data, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    trained_s = train_with_strategy(supernet, space, train, strategy, options, seed, rng, args.num_random, args.temperature)
    rows = []
    for i, config in enumerate(configs):
        sub = space.architecture(config)
        supernet.set_sub_network(sub)
        rows.append({"data": data, "seed": seed, "strategy": strategy, "subnet": i, "error": 1 - accuracy(supernet, val, 128),
                     "params": count_params(supernet.shape, sub)["params"], "train_s": trained_s})
    supernet.reset_super_network()
    return pd.DataFrame(rows)


def train_with_strategy(supernet: SuperNetwork, space: SmallSpace, train: Encoded, strategy: str,
                        options: FinetuneOptions, seed: int, rng: np.random.Generator, num_random: int,
                        temperature: float) -> float:
    """Fine-tune `supernet` on `train` with a training strategy (the project's loop); its seconds. Leaves eval mode."""
    rule = make_strategy(strategy, **strategy_options(strategy, {"num_random": num_random, "temperature": temperature}))
    torch.manual_seed(seed)
    started = time.perf_counter()
    supernet.train()
    fit(supernet.parameters(), train.loader(options.batch_size, shuffle=True, seed=seed), options, torch.device("cpu"),
        lambda batch, progress: rule.step(supernet, batch, space, rng, progress), log_every=10**9)
    supernet.eval()
    return time.perf_counter() - started


def earlier_points(parser: argparse.ArgumentParser, path: Path, settings: str) -> pd.DataFrame:
    """The rows an earlier run with the same settings appended to `path` (empty when there is none);
    a file from other settings is an error, so one table never mixes two."""
    points = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if not points.empty and set(points["settings"]) != {settings}:
        parser.error(f"{path} holds runs with other settings; pass another --out or delete it")
    return points


def quantile(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their mean rank)."""
    return (pd.Series(values).rank(method="average").to_numpy() - 1) / max(len(values) - 1, 1)


def hypervolumes(points: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One hypervolume per (data, seed, strategy), on objectives quantile-normalised per data set."""
    out = []
    for data, frame in points.groupby("data"):
        frame = frame.assign(q_error=quantile(frame["error"].to_numpy()), q_params=quantile(frame["params"].to_numpy()))
        ref = np.array([1.0 + margin, 1.0 + margin])
        for (seed, strategy), group in frame.groupby(["seed", "strategy"]):
            hv = hypervolume(group[["q_params", "q_error"]].to_numpy(), ref)
            out.append({"data": data, "seed": seed, "strategy": strategy, "hypervolume": hv,
                        "best_error": group["error"].min(), "train_s": group["train_s"].iloc[0]})
    return pd.DataFrame(out)


def table(hv: pd.DataFrame, strategies: list[str]) -> str:
    lines = [f"{'data':<14} {'strategy':<14} {'seeds':>5} {'HV mean':>8} {'HV std':>7} {'median':>7} {'range':>15} "
             f"{'vs ' + BASELINE:>12} {'best err':>9} {'train s':>8}"]
    for data, frame in hv.groupby("data"):
        base = frame[frame["strategy"] == BASELINE]["hypervolume"].mean() if BASELINE in strategies else float("nan")
        for strategy in strategies:
            f = frame[frame["strategy"] == strategy]
            mean, h = f["hypervolume"].mean(), f["hypervolume"]
            lines.append(f"{data:<14} {strategy:<14} {len(f):>5} {mean:>8.4f} {h.std(ddof=0):>7.4f} {h.median():>7.4f} "
                         f"{h.min():>7.4f}-{h.max():<7.4f} {mean / base:>12.3f} {f['best_error'].mean():>9.3f} "
                         f"{f['train_s'].mean():>8.1f}")
        lines.append(f"{data:<14} {seed_reading(frame, strategies)}")
    return "\n".join(lines)


def seed_reading(frame: pd.DataFrame, strategies: list[str]) -> str:
    """Whether one strategy's seeds spread wider than the strategies' medians lie apart."""
    by = {s: frame.loc[frame["strategy"] == s, "hypervolume"] for s in strategies}
    medians = sorted(float(v.median()) for v in by.values() if len(v))
    if len(medians) < 2:
        return "(one strategy: nothing to compare)"
    if min(len(v) for v in by.values()) < 2:
        return "(one seed: how far seeds disagree is not measured)"
    gap = max(medians) - min(medians)
    widest = max(strategies, key=lambda s: float(np.ptp(by[s])) if len(by[s]) else 0.0)
    spread = float(np.ptp(by[widest]))
    verdict = ("the seeds disagree more than the strategies differ: the ordering is not evidence" if spread > gap
               else "the strategies differ more than any one's seeds do")
    return f"widest seed range {spread:.4f} ({widest}) against {gap:.4f} between the best and worst medians: {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="movie-reviews,trec6", help="comma-separated shipped data sets")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--subnets", type=int, default=100)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--train-examples", type=int, default=512)
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4, help="the quickstart's; paper: 2e-5 with several epochs on all data")
    parser.add_argument("--pooling", default="mean", choices=("cls", "mean"),
                        help="what the head reads: the quickstart's mean (MiniLM was trained with it; see studies/quickstart.yaml)")
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=10.0)
    parser.add_argument("--margin", type=float, default=0.1, help="reference point = (1 + margin) on both normalised objectives")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paper-scale", action="store_true", help="all training and validation data, 128 tokens, 5 epochs, 2e-5, 10 seeds")
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_strategies_points.csv",
                        help="every scored sub-network (appended as each run ends; a rerun skips what is there)")
    parser.add_argument("--results", type=Path, default=RESULTS / "supernet_strategies.txt")
    args = parser.parse_args()
    if args.paper_scale:
        args.max_length, args.epochs, args.lr, args.seeds = 128, 5, 2e-5, 10
    torch.set_num_threads(args.threads)
    strategies = args.strategies.split(",")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    settings = (f"{args.subnets} random SMALL sub-networks of {args.model}, "
                f"{'all' if args.paper_scale else args.train_examples} training examples of {args.max_length} tokens, "
                f"{args.epochs} epoch(s) at lr {args.lr}, {args.pooling} pooling")
    points = earlier_points(parser, args.out, settings)
    done = set() if points.empty else set(zip(points["data"], points["seed"], points["strategy"]))
    datasets = args.data.split(",")
    for seed in range(args.seeds):  # seed by seed, so a run stopped early has equal seeds per strategy
        for data in datasets:
            for strategy in strategies:
                if (data, seed, strategy) in done:
                    continue
                t0 = time.perf_counter()
                frame = run_one(args, data, seed, strategy).assign(settings=settings)
                points = pd.concat([points, frame], ignore_index=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                points.to_csv(args.out, index=False)
                print(f"# {data} seed {seed} {strategy}: {time.perf_counter() - t0:.0f}s", flush=True)
    points = points[points["data"].isin(datasets) & points["strategy"].isin(strategies) & (points["seed"] < args.seeds)]
    text = (f"# command: {' '.join(sys.argv)}\n# {settings}; {args.seeds} seed(s); quantile-normalised hypervolume, "
            f"reference 1 + {args.margin}\n" + table(hypervolumes(points, args.margin), strategies))
    print(text)
    args.results.write_text(text + "\n")


if __name__ == "__main__":
    main()
