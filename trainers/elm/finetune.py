"""Task fine-tuning by distillation (ELM Algorithm 2 step 2) and the found model's retraining.

- `tune_on_task`: each step runs the teacher (frozen encoder + linear probe, `trainers/elm/task.py`)
  and the student on a batch of task sentences and trains on the class-output loss (Eq. 1 KL, or
  Eq. 4 Pearson plus DIST's intra-class term weighted by `intra_class_weight`), the layer losses of
  the same kind (Eq. 2-3 or Eq. 5, as in pre-training) and, with `label_weight` > 0, cross-entropy
  with the gold labels. A class loss that cannot train the head (Eq. 4 alone on two classes) is
  refused before the first step. On the super-network every step samples a path uniformly (SPOS),
  so every candidate the search scores has been tuned; on an extracted model the path is fixed.
- `distill_on_corpus`: the layer losses alone on pre-training text, for an extracted model (the
  paper pre-trains the found architecture again before fine-tuning it, Appendix A).

Both use AdamW with a linear warm-up over the first tenth of the steps, then a linear decay to zero
(Appendix A), and clip gradients at 1. With `saves` (`trainers/progress.py`) both save their state
as they go and continue from the newest save, ending where an uninterrupted run ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search_spaces.elm import ElmArch
from trainers.distill.masking import sample_batch
from trainers.distill.teacher import Teacher
from trainers.elm.distill import Adapters, LossKind, check_loss_kind, class_loss, path_losses
from trainers.elm.supernet import ElmModel
from trainers.elm.task import ElmClassifier, TaskTeacher
from trainers.encode import Encoded
from trainers.options import PrecisionOptions
from trainers.precision import MixedPrecision
from trainers.progress import ProgressSaves
from trainers.report import TrainerError

Log = Callable[[str], None]
#: a generator -> the path of the next step (None: the classifier's encoder is one fixed model).
PathSampler = Callable[[torch.Generator], "ElmArch | None"]


@dataclass(frozen=True)
class TuneConfig(PrecisionOptions):
    steps: int = 200
    batch_size: int = 16
    lr: float = 4e-4
    weight_decay: float = 0.01
    loss: LossKind = "pearson"
    #: weight of the layer (attention + block output) losses next to the class-output loss.
    layer_weight: float = 1.0
    #: weight of the cross-entropy with the gold labels (0: the teacher's class outputs only).
    label_weight: float = 0.0
    #: weight of DIST's intra-class term next to Eq. 4 (loss "pearson" only); it is what trains a
    #: two-class head, where Eq. 4 has no gradient (trainers/distill/losses.py).
    intra_class_weight: float = 1.0

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"option 'lr' must be > 0, got {self.lr}")
        for name in ("weight_decay", "layer_weight", "label_weight", "intra_class_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"option {name!r} must be >= 0, got {getattr(self, name)}")
        check_loss_kind(self.loss)

    def head_untrainable(self, num_labels: int) -> str | None:
        """Why these losses cannot train a `num_labels`-class head, or None when they can."""
        if self.loss == "pearson" and num_labels == 2 and not self.intra_class_weight and not self.label_weight:
            return ("with loss 'pearson', intra_class_weight 0 and label_weight 0 the class loss is Eq. 4 alone, which "
                    "cannot train a two-class head (Pearson's rho across two logits is always +-1, so it has no "
                    "gradient); set intra_class_weight > 0 (DIST's intra-class term) or label_weight > 0")
        return None


def schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 10% of `steps`, then linear decay to zero."""
    warm = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))


def run_steps(params: Iterable[nn.Parameter], config: TuneConfig, loss_at: Callable[[int], Tensor],
              log: Log | None, what: str, log_every: int = 25, saves: ProgressSaves | None = None,
              generator: torch.Generator | None = None) -> float:
    """`config.steps` optimiser steps on `loss_at(step)`; returns the mean loss of the last log window.
    With `saves`, continues from the newest save there (its weights, optimiser, RNGs and `generator`,
    the batch stream `loss_at` draws from) and saves every `saves.every_s` seconds and at the end."""
    params = [p for p in params if p.requires_grad]
    amp = MixedPrecision(config.precision, params[0].device)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    lr_schedule = schedule(optimizer, config.steps)
    window: list[float] = []
    last = float("nan")
    first = 0
    restored = saves.restore(params) if saves is not None else None
    if restored is not None:
        optimizer.load_state_dict(restored["optimizer"])
        lr_schedule.load_state_dict(restored["schedule"])
        amp.load_state_dict(restored.get("amp"))
        first, window, last = restored["step"], restored["window"], restored["last"]
        if generator is not None:
            generator.set_state(restored["generator"])
        if log is not None:
            log(f"{what}: continuing from the save of step {first}/{config.steps}")
    for step in range(first, config.steps):
        with amp.autocast():
            loss = loss_at(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{what}: the loss became {float(loss)} at step {step + 1}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizer, params, 1.0)
        lr_schedule.step()
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            last = sum(window) / len(window)
            if log is not None:
                log(f"{what}: step {step + 1}/{config.steps} loss {last:.4f}")
            window = []
        if saves is not None and (saves.due() or step + 1 == config.steps):
            saves.save(step + 1, params, {"optimizer": optimizer.state_dict(), "schedule": lr_schedule.state_dict(),
                                          "window": window, "last": last, "amp": amp.state_dict(),
                                          "generator": generator.get_state() if generator is not None else None})
    return last


def tune_on_task(classifier: ElmClassifier, adapters: Adapters, teacher: TaskTeacher, train: Encoded,
                 config: TuneConfig, sample_path: PathSampler, seed: int = 0, log: Log | None = None,
                 what: str = "task fine-tune", saves: ProgressSaves | None = None) -> float:
    """Fine-tune `classifier` (and the adapters) in place on `train`; returns the last mean loss."""
    assert train.labels is not None
    why = config.head_untrainable(teacher.head.out_features)
    if why is not None:
        raise TrainerError(f"{what}: {why}")
    device = teacher.teacher.device
    classifier.to(device).train()
    adapters.to(device).train()
    generator = torch.Generator().manual_seed(seed)

    def loss_at(step: int) -> Tensor:
        arch = sample_path(generator)
        rows = torch.randint(len(train), (min(config.batch_size, len(train)),), generator=generator)
        ids, mask = train.input_ids[rows].to(device), train.attention_mask[rows].to(device)  # (B, S)
        target, target_logits = teacher(ids, mask)
        logits, out = classifier.run(ids, mask, arch)
        loss = class_loss(config.loss, target_logits, logits, config.intra_class_weight)
        if config.layer_weight:
            loss = loss + config.layer_weight * path_losses(config.loss, out, target, adapters, mask).total
        if config.label_weight:
            loss = loss + config.label_weight * F.cross_entropy(logits, train.labels[rows].to(device))  # type: ignore[index]
        return loss

    return run_steps([*classifier.parameters(), *adapters.parameters()], config, loss_at, log, what, saves=saves,
                     generator=generator)


def distill_on_corpus(model: ElmModel, adapters: Adapters, teacher: Teacher, blocks: Tensor, config: TuneConfig,
                      seed: int = 0, log: Log | None = None, saves: ProgressSaves | None = None) -> float:
    """Layer-wise distillation of an extracted model on (N, S) pre-training blocks; returns the last mean loss."""
    device = teacher.device
    model.to(device).train()
    adapters.to(device).train()
    generator = torch.Generator().manual_seed(seed)

    def loss_at(step: int) -> Tensor:
        ids = sample_batch(blocks, config.batch_size, generator).to(device)  # (B, S)
        mask = torch.ones_like(ids)
        return path_losses(config.loss, model(ids, mask), teacher(ids, mask), adapters, mask).total

    return run_steps([*model.parameters(), *adapters.parameters()], config, loss_at, log, "distillation",
                     saves=saves, generator=generator)
