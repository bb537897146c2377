"""Can ELM's relational class loss train a classifier head? Eq. 4 alone against Eq. 4 + DIST's intra-class term.

    nice .venv/bin/python benchmarks/elm_class_loss.py                 # ~1 min on one core
    nice .venv/bin/python benchmarks/elm_class_loss.py --seeds 10 --steps 1000
    nice .venv/bin/python benchmarks/elm_class_loss.py --real          # + the real task, ~35 min

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

`--real`: the same question on the study's task. One super-network is pre-trained with the settings
of studies/elm.yaml (assets: `lmnas assets fetch minilm-l6 wikitext2 movie-reviews`), then
fine-tuned on movie reviews as the study's stage does (SPOS, every path, 300 steps, teacher probe)
with each class loss and `--real-seeds` seeds (the seed draws the head's init and the batches).
Printed: validation accuracy (250 sentences) of the all-BERT path and the mean over 8 random paths.

Measured (benchmarks/results/elm_class_loss.txt): see the module docstring of trainers/distill/losses.py.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import Tensor, nn

from trainers.distill.losses import logit_kl, pearson_class_loss, pearson_correlation, relational_class_loss
from trainers.elm.finetune import TuneConfig, run_steps

ROOT = Path(__file__).resolve().parents[1]

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


@dataclass(frozen=True)
class Unchecked(TuneConfig):
    """A configuration `tune_on_task` refuses (Eq. 4 alone on two classes), run here to show why."""

    def head_untrainable(self, num_labels: int) -> str | None:
        return None


def real_task(seeds: int, log: Callable[[str], None]) -> None:
    from search_spaces.elm import ElmSpace
    from trainers.data import load_model_dir
    from trainers.distill.teacher import Teacher
    from trainers.elm.checkpoint import load_checkpoint
    from trainers.elm.finetune import tune_on_task
    from trainers.elm.options import ElmSubnetOptions
    from trainers.elm.pretrain import pretrain
    from trainers.elm.stage import cache_root
    from trainers.elm.task import ElmClassifier, TaskTeacher, accuracy, task_data, teacher_head

    study = yaml.safe_load((ROOT / "studies" / "elm.yaml").read_text())
    options: dict[str, Any] = {**study["trainer"]["options"], "device": "cpu"}
    opts = ElmSubnetOptions(**options)
    assert opts.task is not None
    space = ElmSpace(**study["search_space"]["options"])
    cpu = torch.device("cpu")
    tuned = replace(opts.finetune_config(), label_weight=0.0, intra_class_weight=1.0)
    variants: dict[str, TuneConfig] = {
        "eq4": Unchecked(**{**vars(tuned), "intra_class_weight": 0.0}),
        "eq4+intra": tuned,
        "eq4+intra+labels": replace(tuned, label_weight=1.0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = pretrain(opts.pretrain_options(space), Path(tmp) / "supernet", seed=0)
        log(f"# pre-trained the study's super-network in {time.perf_counter() - start:.0f} s")
        teacher = Teacher.load(load_model_dir(opts.teacher), cpu)
        data = task_data(opts.task, teacher.tokenizer, opts.max_length, opts.train_examples, opts.eval_examples, 0)
        probe = TaskTeacher(teacher, teacher_head(teacher, opts.teacher, data, cache_root(opts) / "teacher_heads", 0,
                                                  opts.probe_steps))
        probe_acc, _ = accuracy(lambda i, m: probe(i, m)[1], data.validation, cpu, opts.batch_size)
        log(f"# {opts.task}: {len(data.train)} training, {len(data.validation)} validation sentences; teacher probe "
            f"{probe_acc:.3f}; fine-tune: {tuned.steps} SPOS steps of {tuned.batch_size}, lr {tuned.lr}")
        log(f"{'class loss':<18} {'seed':>4} {'all-BERT acc':>13} {'8 paths acc':>12} {'min':>6} {'max':>6}")
        for name, config in variants.items():
            rows = []
            for seed in range(seeds):
                ckpt = load_checkpoint(folder, cpu)
                torch.manual_seed(seed)
                classifier = ElmClassifier(ckpt.supernet, data.num_labels)
                tune_on_task(classifier, ckpt.adapters, probe, data.train, config, ckpt.supernet.sample_path, seed)
                classifier.eval()
                generator = torch.Generator().manual_seed(123)  # the same 8 paths for every run
                paths = [ckpt.supernet.full_path("bert")] + [ckpt.supernet.sample_path(generator) for _ in range(8)]
                accs = [accuracy(lambda i, m: classifier.run(i, m, p)[0], data.validation, cpu, opts.batch_size)[0]
                        for p in paths]
                rows.append((accs[0], statistics.mean(accs[1:])))
                log(f"{name:<18} {seed:>4} {accs[0]:>13.3f} {rows[-1][1]:>12.3f} {min(accs[1:]):>6.3f} "
                    f"{max(accs[1:]):>6.3f}")
            if seeds > 1:
                log(f"{name + ' mean':<18} {'':>4} {statistics.mean(r[0] for r in rows):>13.3f} "
                    f"{statistics.mean(r[1] for r in rows):>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16, help="the fine-tune's default batch (finetune_batch)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weights", default="0.25,0.5,1,2", help="intra-class weights of the second table")
    parser.add_argument("--real", action="store_true", help="also fine-tune the study's super-network on its task")
    parser.add_argument("--real-seeds", type=int, default=3)
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
    print(f"# {time.perf_counter() - start:.0f} s", flush=True)
    if args.real:
        print()
        real_task(args.real_seeds, lambda line: print(line, flush=True))
        print(f"# {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
