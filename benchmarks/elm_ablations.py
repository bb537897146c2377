"""ELM ablation: block diversity under relational (Pearson) against classic (MSE) distillation.

ELM Fig. 3b and Fig. 6: blocks of one layer trained with the classic point-to-point losses end up
computing similar features; the relational losses keep them apart. For each seed this trains two
super-networks that differ only in the loss kind (`trainers/elm/pretrain.py`, the shipped MiniLM-L6
teacher and WikiText-2 by default) and measures, per layer, the mean cosine similarity between the
outputs of the layer's six blocks given the same input (the layer's input on the all-BERT path),
averaged over the 15 block pairs and the held-out tokens. The table gives mean and standard
deviation over seeds and the ratio Pearson / classic (< 1: the relational losses keep blocks apart).

    nice .venv/bin/python benchmarks/elm_ablations.py --seeds 3 --epochs 2 --steps 60
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces.elm import BLOCK_KINDS
from trainers.autodistill.student import padding_bias
from trainers.data import load_model_dir
from trainers.distill.teacher import Teacher
from trainers.elm.checkpoint import load_checkpoint
from trainers.elm.pretrain import corpus_blocks, pretrain
from trainers.elm.supernet import ElmSuperNet


@torch.no_grad()
def block_similarity(supernet: ElmSuperNet, ids: torch.Tensor) -> list[float]:
    """Per layer: mean over block pairs and tokens of the cosine similarity of the six blocks' outputs."""
    supernet.eval()
    mask = torch.ones_like(ids)
    x = supernet.embeddings(ids, torch.zeros_like(ids))  # (B, S, hidden)
    bias = padding_bias(mask, x.dtype)
    out = []
    for layer in range(supernet.shape.num_layers):
        ys = [supernet.block(layer, kind)(x, bias).hidden for kind in BLOCK_KINDS]  # 6 x (B, S, hidden)
        pairs = [F.cosine_similarity(a, b, dim=-1).mean().item() for a, b in itertools.combinations(ys, 2)]
        out.append(float(np.mean(pairs)))
        x = ys[0]  # the next layer's input on the all-BERT path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--teacher", default="minilm-l6")
    parser.add_argument("--corpus", default="wikitext2")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, list[list[float]]] = {"classic": [], "pearson": []}
    start = time.perf_counter()
    teacher = Teacher.load(load_model_dir(args.teacher))
    # Held-out blocks no seed trains on (the validation split), the same for every super-network.
    _, valid = corpus_blocks(teacher, args.corpus, args.seq_len, 1, 32, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for loss in ("classic", "pearson"):
                options = {"teacher": args.teacher, "corpus": args.corpus, "seq_len": args.seq_len,
                           "corpus_blocks": args.epochs * args.steps * args.batch, "eval_blocks": 32,
                           "num_layers": args.layers, "hidden_size": args.hidden, "num_heads": args.heads,
                           "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch,
                           "loss": loss, "device": "cpu"}
                folder = pretrain(options, Path(tmp) / f"{loss}-{seed}", seed=seed)
                results[loss].append(block_similarity(load_checkpoint(folder).supernet, valid))
                print(f"seed {seed} {loss:8s} per-layer similarity {np.round(results[loss][-1], 4).tolist()}", flush=True)
    print(f"\nblock diversity, {args.seeds} seeds, {args.layers} layers, hidden {args.hidden}, "
          f"{args.epochs}x{args.steps} steps ({time.perf_counter() - start:.0f} s); baseline: classic (MSE) losses")
    print(f"{'layer':>5} {'classic mean±sd':>18} {'pearson mean±sd':>18} {'pearson/classic':>16}")
    classic, pearson = np.array(results["classic"]), np.array(results["pearson"])  # (seeds, layers)
    for layer in range(args.layers):
        c, p = classic[:, layer], pearson[:, layer]
        print(f"{layer:>5} {c.mean():>11.4f}±{c.std():.4f} {p.mean():>11.4f}±{p.std():.4f} {p.mean() / c.mean():>16.3f}")
    c, p = classic.mean(1), pearson.mean(1)
    print(f"{'all':>5} {c.mean():>11.4f}±{c.std():.4f} {p.mean():>11.4f}±{p.std():.4f} {p.mean() / c.mean():>16.3f}")


if __name__ == "__main__":
    main()
