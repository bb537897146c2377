"""Can ELM's relational class loss train a classifier head? Eq. 4 alone against Eq. 4 + DIST's intra-class term.

    nice .venv/bin/python benchmarks/elm_class_loss.py                 # ~1 min on one core
    nice .venv/bin/python benchmarks/elm_class_loss.py --seeds 10 --steps 1000

A synthetic teacher, so the loss alone is measured: features x ~ N(0, I_D) (D = 32), a random linear
teacher head (logits of standard deviation 2, biases of standard deviation 0.5). For each loss:

- the largest |gradient| on a fresh head (`ElmClassifier`'s init: weights N(0, 0.02), zero biases)
  on one batch of `--batch` examples, for C = 2 and C = 6 (median over seeds, with the range);
- a fresh head trained on that loss alone (the fine-tune's optimiser loop, `trainers/elm/finetune.py`
  `run_steps`: AdamW, warm-up, linear decay, clipping; `--steps` batches of `--batch`), then its
  agreement with the teacher's arg-max on 4,000 held-out examples, for C = 2 and C = 5 (mean, range).

Losses: `eq4` (ELM Eq. 4, DIST's inter-class relation on logits), `eq4+intra` (plus DIST's
intra-class term on probabilities: the default, `intra_class_weight` 1), `eq4+intra(logits)` (the
intra-class term on logits, which leaves each class's offset free) and `kl` (Eq. 1, for reference).
A second table gives the agreement of Eq. 4 + w * intra for the weights of `--weights`.

Measured (benchmarks/results/elm_class_loss.txt): see the module docstring of trainers/distill/losses.py.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn

from trainers.distill.losses import logit_kl, pearson_class_loss, pearson_correlation, relational_class_loss
from trainers.elm.finetune import TuneConfig, run_steps

Loss = Callable[[Tensor, Tensor], Tensor]
FEATURES = 32
HELD_OUT = 4000


def intra_on_logits(teacher: Tensor, student: Tensor) -> Tensor:
    """The rejected variant: each class's logit column correlated across the batch (shift-invariant per class)."""
    return pearson_class_loss(teacher, student) + (1.0 - pearson_correlation(teacher.T, student.T)).mean()


LOSSES: dict[str, Loss] = {
    "eq4": pearson_class_loss,
    "eq4+intra": lambda t, s: relational_class_loss(t, s, 1.0),
    "eq4+intra(logits)": intra_on_logits,
    "kl": logit_kl,
}


class Problem:
    """A random linear teacher over N(0, I) features and a fresh student head, both seeded."""

    def __init__(self, classes: int, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(classes, FEATURES, generator=self.generator) * 2.0 / FEATURES**0.5
        self.bias = torch.randn(classes, generator=self.generator) * 0.5
        torch.manual_seed(seed)
        self.head = nn.Linear(FEATURES, classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(size, FEATURES, generator=self.generator)  # (B, D)
        return x, x @ self.weight.T + self.bias  # features, (B, C) teacher logits


def largest_gradient(loss: Loss, classes: int, seed: int, batch: int) -> float:
    problem = Problem(classes, seed)
    x, teacher = problem.batch(batch)
    loss(teacher, problem.head(x)).backward()
    return max(float(p.grad.abs().max()) for p in problem.head.parameters() if p.grad is not None)


def agreement(loss: Loss, classes: int, seed: int, steps: int, batch: int, lr: float) -> float:
    problem = Problem(classes, seed)

    def loss_at(step: int) -> Tensor:
        x, teacher = problem.batch(batch)
        return loss(teacher, problem.head(x))

    run_steps(problem.head.parameters(), TuneConfig(steps=steps, batch_size=batch, lr=lr, weight_decay=0.0),
              loss_at, None, "head")
    x, teacher = problem.batch(HELD_OUT)
    with torch.no_grad():
        return float((problem.head(x).argmax(-1) == teacher.argmax(-1)).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16, help="the fine-tune's default batch (finetune_batch)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weights", default="0.25,0.5,1,2", help="intra-class weights of the second table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    seeds = range(args.seeds)
    print(f"# {args.seeds} seeds; gradient on one batch of {args.batch}; training: {args.steps} steps of "
          f"{args.batch}, AdamW lr {args.lr}; agreement on {HELD_OUT} held-out examples; D = {FEATURES}")
    print(f"{'loss':<18} {'max|grad| C=2 (range)':>28} {'max|grad| C=6 (range)':>28} "
          f"{'agree C=2 (range)':>24} {'agree C=5 (range)':>24}")
    for name, loss in LOSSES.items():
        cells = []
        for classes in (2, 6):
            grads = [largest_gradient(loss, classes, seed, args.batch) for seed in seeds]
            cells.append(f"{statistics.median(grads):.2e} ({min(grads):.0e}-{max(grads):.0e})")
        for classes in (2, 5):
            agree = [agreement(loss, classes, seed, args.steps, args.batch, args.lr) for seed in seeds]
            cells.append(f"{statistics.mean(agree):.3f} ({min(agree):.3f}-{max(agree):.3f})")
        print(f"{name:<18} {cells[0]:>28} {cells[1]:>28} {cells[2]:>24} {cells[3]:>24}", flush=True)
    print(f"\n{'intra weight':<18} {'agree C=2 (range)':>24} {'agree C=5 (range)':>24}")
    for weight in (float(w) for w in args.weights.split(",")):
        cells = []
        for classes in (2, 5):
            agree = [agreement(lambda t, s: relational_class_loss(t, s, weight), classes, seed, args.steps, args.batch,
                               args.lr) for seed in seeds]
            cells.append(f"{statistics.mean(agree):.3f} ({min(agree):.3f}-{max(agree):.3f})")
        print(f"{weight:<18g} {cells[0]:>24} {cells[1]:>24}", flush=True)
    print(f"# {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
