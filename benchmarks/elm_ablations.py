"""ELM ablations (elm-elastic-architecture-search.txt Appendix B, Fig. 3b / 6, Tables V-VII), over seeds and tasks.

For each task and seed it runs Algorithm 2 at a small scale for three super-networks that differ in
one thing:

- `pearson`: relational losses, FFNs grown by PCA score (ELM);
- `classic`: the classic KL / MSE losses (Table VII's dagger), FFNs grown;
- `fixed`: relational losses, every FFN fixed at its block's input width, no growth (Table V's dagger).

Each is pre-trained on WikiText-2 by distillation from MiniLM-L6 and fine-tuned on the task
(`trainers/elm/stage.py`); the paper's genetic search (crossover 1.0, mutation 0.1) looks for the
most accurate candidate on the shared weights as an `elm_subnet` study on the in-process backend
(`lmnas run --backend local`); the study's stage after the trials retrains it (head search,
distillation on WikiText-2, then fine-tuning) and scores it on the task's test split
(`trainers/elm/final.py`). The ELM model is retrained a second time with all its heads kept, no CKA
head search (Table VI's dagger; heads move no parameters here, so both have equal size).

Equal sizes: left to itself the search keeps each variant's most accurate candidate whatever its
size (one seed gave 126k parameters for ELM and 212k for `fixed` under one cap), so candidates are
also held above a floor, `--band` x the cap (0.95: found models within 5 % of each other). Sizes
come in steps of a block, so when fewer than 2 x `--trials` block choices of a trained
super-network lie in that band the floor drops to the 2 x trials-th largest size under the cap;
the summary prints the sizes found.

Block diversity (Fig. 3b / 6): per layer, the mean over the 15 block pairs and the held-out tokens of
the cosine similarity between the blocks' changes to their common input (output minus input; the
outputs themselves share the residual input and look alike whatever the blocks compute), measured on
every trained super-network.

Each finished (task, seed, variant) is appended to `--points`; a rerun skips those, so an
interrupted run resumes. The summary (`--out`, also `--summary-only`) gives per task the mean and
spread of the test accuracies, the paired difference from ELM, and whether the paper's direction
holds beyond the spread.

    nice .venv/bin/python benchmarks/elm_ablations.py                 # CPU scale (see the defaults)
    .venv/bin/python benchmarks/elm_ablations.py --paper-micro --device cuda   # ELM-Micro's sizes, GPU
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from orchestrator.run import run_study
from orchestrator.study import parse_study
from search_spaces.base import Config
from search_spaces.elm import BLOCK_KINDS, ElmSpace
from trainers.autodistill.student import padding_bias
from trainers.elm.checkpoint import load_checkpoint
from trainers.elm.final import retrain_and_evaluate
from trainers.elm.hooks import FINAL_TABLE, searched_space
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.pretrain import corpus_blocks
from trainers.elm.stage import ensure_supernet
from trainers.elm.supernet import ElmSuperNet

RESULTS = Path(__file__).parent / "results"
VARIANTS = {"pearson": {"loss": "pearson"}, "classic": {"loss": "classic"},
            "fixed": {"loss": "pearson", "ffn_init": "input"}}


@torch.no_grad()
def block_similarity(supernet: ElmSuperNet, ids: torch.Tensor) -> list[float]:
    """Per layer: mean over block pairs and tokens of the cosine similarity of the six blocks' changes
    (output minus input) to the same input, the layer's input on the all-BERT path."""
    supernet.eval()
    mask = torch.ones_like(ids)
    x = supernet.embeddings(ids, torch.zeros_like(ids))  # (B, S, hidden)
    bias = padding_bias(mask, x.dtype)
    out = []
    for layer in range(supernet.shape.num_layers):
        ys = [supernet.block(layer, kind)(x, bias).hidden for kind in BLOCK_KINDS]  # 6 x (B, S, hidden)
        deltas = [y - x for y in ys]
        pairs = [F.cosine_similarity(a, b, dim=-1).mean().item() for a, b in itertools.combinations(deltas, 2)]
        out.append(float(np.mean(pairs)))
        x = ys[0]
    return out


def size_floor(space: ElmSpace, cap: float, band: float, least: int) -> float:
    """The lower end of the size band: `band` x the cap, or lower when fewer than `least` block choices
    of `space` (the trained widths) lie between it and the cap: then the `least`-th largest size under
    the cap, so that the search has candidates to choose from (the summary prints the sizes found)."""
    sizes = sorted((s for s in (space.capped_size({f"block_{i}": k for i, k in enumerate(kinds)})
                                for kinds in itertools.product(BLOCK_KINDS, repeat=space.shape.num_layers)) if s <= cap),
                   reverse=True)
    if not sizes:
        raise SystemExit(f"no block choice of the trained super-network is under the cap {cap:g}; raise --cap")
    return min(band * cap, sizes[min(least, len(sizes)) - 1])


def search_and_retrain(space: dict[str, Any], options: dict[str, Any], floor: float, trials: int, population: int,
                       seed: int, storage: Path, name: str) -> tuple[dict[str, float], Config]:
    """The paper's genetic search (accuracy only, crossover 1.0, mutation 0.1) over the trained
    super-network `options` names, under the cap and, by exclusion, at least `floor` parameters, as an
    `elm_subnet` study in this process; (the retrained most accurate candidate's test row, that
    candidate's configuration)."""
    study = parse_study({
        "name": name, "storage": str(storage), "seed": seed,
        "search_space": {"name": "elm", "options": space},
        "trainer": {"kind": "elm_subnet", "options": options},
        "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "params_non_embedding", "mode": "min"}],
        "constraints": [f"params_non_embedding >= {floor:.0f}"],
        "searcher": {"name": "ga", "options": {"population": population, "generations": -(-trials // population),
                                               "crossover_probability": 1.0, "mutation_probability": 0.1}},
        "budget": {"num_trials": trials},
    })
    outcome = run_study(study, progress=False, backend="local")
    (row,) = pd.read_parquet(outcome.directory / f"{FINAL_TABLE}.parquet").to_dict("records")
    trials_by_id = outcome.trials.set_index("trial_id")
    config = {c[len("config."):]: v for c, v in trials_by_id.loc[row["trial_id"]].items() if c.startswith("config.")}
    return row, config


def run_variant(args: argparse.Namespace, task: str, seed: int, variant: str, cache: Path,
                valid: torch.Tensor) -> list[dict[str, Any]]:
    """One super-network of `variant` trained for `task`, searched and its found model retrained: the
    result rows (two for `pearson`: with and without the head search)."""
    cap = {"max_params": args.cap, "cap_metric": "params_non_embedding"}
    space = ElmSpace(num_layers=args.layers, hidden_size=args.hidden, num_heads=args.heads, **cap)
    options = dict(teacher=args.teacher, corpus="wikitext2", seq_len=args.seq_len, corpus_blocks=args.corpus_blocks,
                   pretrain_epochs=args.epochs, pretrain_steps=args.steps, pretrain_batch=args.batch,
                   task=task, max_length=args.max_length, train_examples=args.train_examples,
                   eval_examples=args.eval_examples, finetune_steps=args.finetune_steps, label_weight=1.0,
                   final_distill_steps=args.final_steps, final_finetune_steps=args.final_steps,
                   eval_tasks=[task], onnx=False, cache_dir=str(cache), device=args.device, **VARIANTS[variant])
    start = time.perf_counter()
    folder = ensure_supernet(ElmSubnetOptions(**options), space, seed, lambda line: None)
    options["checkpoint"] = str(folder)
    searched = searched_space(space, str(folder))
    floor = size_floor(searched, args.cap, args.band, 2 * args.trials)
    row, config = search_and_retrain({**cap, "checkpoint": str(folder)}, options, floor, args.trials,
                                     args.population, seed, cache / "studies", f"{task}-{variant}-{seed}")
    similarity = float(np.mean(block_similarity(load_checkpoint(folder).supernet, valid)))
    key = {"task": task, "seed": seed}
    rows = [{**key, "variant": variant, "accuracy": row["accuracy"], "teacher_accuracy": row["teacher_accuracy"],
             "params": row["params_non_embedding"], "similarity": similarity, "size_floor": floor}]
    if variant == "pearson":
        arch = searched.architecture(searched.normalise(config))
        (row,) = retrain_and_evaluate(ElmSubnetOptions(**options), str(folder), arch, None, seed, lambda line: None,
                                      head_search=False)
        rows.append({**key, "variant": "pearson-no-heads", "accuracy": row["accuracy"],
                     "teacher_accuracy": row["teacher_accuracy"], "params": row["params_non_embedding"],
                     "similarity": similarity, "size_floor": floor})
    seconds = time.perf_counter() - start
    for r in rows:
        r["seconds"] = seconds
        print(f"{task} seed {seed} {r['variant']:16s} acc {r['accuracy']:.4f} params {r['params']:.0f} "
              f"({seconds:.0f} s)", flush=True)
    return rows


def load_points(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True) if path.exists() and path.stat().st_size else pd.DataFrame(
        columns=["task", "seed", "variant", "accuracy", "teacher_accuracy", "params", "similarity", "seconds"])


def summary(points: pd.DataFrame, header: str) -> str:
    """Per task: each variant's test accuracy (mean ± sd over seeds) and size, its paired difference from
    ELM, and whether the paper's direction (ELM ahead) holds beyond the spread: ahead in every seed and
    by more than the differences' standard deviation."""
    lines = [header]
    for task, df in points.groupby("task", sort=False):
        acc = df.pivot_table(index="seed", columns="variant", values="accuracy")
        params = df.groupby("variant")["params"]
        seeds = len(acc)
        lines += ["", f"{task}: test accuracy of the retrained found model, {seeds} seeds "
                      f"(teacher probe {df['teacher_accuracy'].mean():.4f})",
                  f"{'variant':>18} {'accuracy mean±sd':>18} {'params (min-max)':>18} {'ELM - variant':>15} "
                  f"{'paired t p':>10}  paper (Micro, GLUE)  reading"]
        for name in ("pearson", "fixed", "pearson-no-heads", "classic"):
            if name not in acc:
                continue
            a = acc[name].dropna()
            size = f"{params.min()[name]:.0f}-{params.max()[name]:.0f}"
            if name == "pearson":
                lines.append(f"{name:>18} {a.mean():>11.4f}±{a.std(ddof=1) if len(a) > 1 else 0:.4f} {size:>18} "
                             f"{'':>15} {'':>10}  {PAPER[name]}")
                continue
            both = acc[["pearson", name]].dropna()
            diff = both["pearson"] - both[name]
            sd = diff.std(ddof=1) if len(diff) > 1 else float("nan")
            p = stats.ttest_rel(both["pearson"], both[name]).pvalue if len(diff) > 1 else float("nan")
            holds = "ELM ahead beyond the spread" if (diff > 0).all() and diff.mean() > sd else (
                "ELM behind beyond the spread" if (diff < 0).all() and -diff.mean() > sd else "within the spread")
            lines.append(f"{name:>18} {a.mean():>11.4f}±{a.std(ddof=1) if len(a) > 1 else 0:.4f} {size:>18} "
                         f"{diff.mean():>+8.4f}±{sd:.4f} {p:>10.2f}  {PAPER[name]:<20} {holds}")
        size = df.pivot_table(index="seed", columns="variant", values="params")
        gap = (size.drop(columns="pearson").sub(size["pearson"], axis=0).abs().div(size["pearson"], axis=0)).max()
        lines.append("sizes: largest gap between a variant's found model and ELM's of the same seed: "
                     + ", ".join(f"{name} {g:.1%}" for name, g in gap.items()))
        sim = df.drop_duplicates(["seed", "variant"]).pivot_table(index="seed", columns="variant", values="similarity")
        if {"pearson", "classic"} <= set(sim):
            ratio = sim["pearson"] / sim["classic"]
            lines.append(f"block diversity (Fig. 3b): mean cosine similarity of the blocks' changes to a common input, "
                         f"lower is more diverse: pearson {sim['pearson'].mean():.3f}±{sim['pearson'].std(ddof=1):.3f}, "
                         f"classic {sim['classic'].mean():.3f}±{sim['classic'].std(ddof=1):.3f}; "
                         f"pearson / classic {ratio.mean():.3f} (below 1 in {(ratio < 1).sum()} of {len(ratio)} seeds)")
    return "\n".join(lines)


PAPER = {"pearson": "75.0", "fixed": "74.2 (Table V)", "pearson-no-heads": "74.2 (Table VI)",
         "classic": "73.8 (Table VII)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="movie-reviews,trec6", help="comma-separated task names")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; default all")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--cap", type=float, default=150_000, help="non-embedding parameter cap")
    parser.add_argument("--band", type=float, default=0.95,
                        help="candidates below this fraction of the cap are excluded, so found models match in size (lowered "
                             "to the 2 x trials-th largest size under the cap when the band holds fewer)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="pre-training steps per epoch")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--corpus-blocks", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--eval-examples", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--final-steps", type=int, default=300)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--teacher", default="minilm-l6")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--points", type=Path, default=RESULTS / "elm_ablations_points.jsonl",
                        help="one row per finished (task, seed, variant), appended; a rerun skips those")
    parser.add_argument("--out", type=Path, default=RESULTS / "elm_ablations.txt")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite --out from --points")
    parser.add_argument("--paper-micro", action="store_true",
                        help="ELM-Micro's sizes (6 layers, hidden 192, 12 heads; cap 1M non-embedding here) and "
                             "longer training (10 x 500 pre-training steps, 2000 fine-tune and retrain steps, "
                             "full task splits, population 50 x 40 generations)")
    args = parser.parse_args()
    if args.paper_micro:
        args.layers, args.hidden, args.heads, args.cap = 6, 192, 12, 1.0e6
        args.epochs, args.steps, args.batch, args.corpus_blocks = 10, 500, 64, 100_000
        args.finetune_steps = args.final_steps = 2000
        args.train_examples, args.eval_examples, args.trials, args.population = None, None, 2000, 50
    header = (f"# .venv/bin/python benchmarks/elm_ablations.py --seeds {args.seeds} --tasks {args.tasks}\n"
              f"ELM ablations: {args.layers} layers, hidden {args.hidden}, cap {args.cap:.0f} non-embedding "
              f"parameters, candidates held above {args.band:.2f} x the cap where the trained widths allow "
              f"(sizes below), {args.epochs}x{args.steps} pre-training steps, GA over {args.trials} "
              f"candidates (population {args.population}); baseline of each difference: the ELM variant "
              f"(pearson losses, grown FFNs, CKA head search), paired by seed")
    if not args.summary_only:
        torch.set_num_threads(args.threads)
        from trainers.data import load_model_dir
        from trainers.distill.teacher import Teacher

        _, valid = corpus_blocks(Teacher.load(load_model_dir(args.teacher)), "wikitext2", args.seq_len, 1, 32, seed=0)
        done = set(map(tuple, load_points(args.points)[["task", "seed", "variant"]].values.tolist()))
        with tempfile.TemporaryDirectory() as tmp:
            for task in args.tasks.split(","):
                for seed in range(args.seeds):
                    for variant in args.variants.split(","):
                        if (task, seed, variant) in done:
                            continue
                        rows = run_variant(args, task, seed, variant, Path(tmp), valid)
                        with args.points.open("a") as f:
                            f.writelines(json.dumps(r) + "\n" for r in rows)
    text = summary(load_points(args.points), header)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
