"""SPOS super-network training by distillation with PCA-guided growth (ELM Algorithm 2, lines 1-5).

Each step samples one block per layer uniformly (`ElmSuperNet.sample_path`; with `sampling`, also a
width and head count, for a space that searches them), runs the teacher and
that path on a batch of pre-training text, and trains the path and its adapters on the attention
and block-output losses of the chosen kind (`trainers/elm/distill.py`). After each epoch but the
last, `grow_after_epoch` widens the FFNs of the top-K blocks by PCA score (no training would
follow a growth after the last one); the optimiser is rebuilt then, since growth replaces the
grown layers' parameters.

With `saves` (`trainers/progress.py`) the loop saves its state every `saves.every_s` seconds and at
the end, and continues from the newest save: the super-network is first grown to the save's FFN
widths, then its weights, the optimiser, the RNGs and the batch stream are loaded back, so the run
ends with the weights an uninterrupted one ends with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from search_spaces.elm import BLOCK_KINDS
from trainers.distill.masking import sample_batch
from trainers.distill.teacher import Teacher
from trainers.elm.distill import Adapters, LossKind, check_loss_kind, path_losses
from trainers.elm.pca_growth import GrowthConfig, grow_after_epoch
from trainers.elm.supernet import ElmSuperNet, PathSampling
from trainers.options import PrecisionOptions
from trainers.precision import MixedPrecision, to_device
from trainers.progress import ProgressSaves
from trainers.report import Report


@dataclass(frozen=True)
class SupernetConfig(PrecisionOptions):
    """SPOS training settings, and the precision (inherited) the paths train in; the teacher stays fp32."""

    epochs: int = 3
    steps_per_epoch: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    loss: LossKind = "pearson"
    #: grow FFNs after each epoch (false: fixed widths, the ablation of Table V).
    grow: bool = True
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    #: held-out rows the PCA scores are measured on.
    pca_rows: int = 8
    #: what each step draws besides the blocks (default: nothing, the paper's SPOS).
    sampling: PathSampling = field(default_factory=PathSampling)

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("epochs", "steps_per_epoch", "batch_size", "pca_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"option {name!r} must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"option 'weight_decay' must be >= 0, got {self.weight_decay}")
        check_loss_kind(self.loss)


def train_supernet(supernet: ElmSuperNet, adapters: Adapters, teacher: Teacher, train_blocks: Tensor,
                   valid_blocks: Tensor, config: SupernetConfig, report: Report, seed: int = 0,
                   saves: ProgressSaves | None = None) -> dict[str, float]:
    """Train in place; reports after every epoch and returns the last report."""
    device = teacher.device
    amp = MixedPrecision(config.precision, device)
    supernet.to(device).train()
    adapters.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    pca_ids = valid_blocks[: config.pca_rows].to(device)
    metrics: dict[str, float] = {}
    step = 0
    resume = restore_progress(supernet, adapters, saves) if saves is not None else None
    if resume is not None:
        generator.set_state(resume["generator"])
        step, metrics = resume["step"], resume["metrics"]
    first_epoch = resume["epoch"] if resume is not None else 1
    for epoch in range(first_epoch, config.epochs + 1):
        modules: list[nn.Module] = [supernet, adapters]
        optimizer = make_optimizer(modules, config)
        sums = {"loss": 0.0, "attention_loss": 0.0, "hidden_loss": 0.0}
        done = 0
        if resume is not None and epoch == first_epoch:
            optimizer.load_state_dict(resume["optimizer"])
            amp.load_state_dict(resume.get("amp"))
            sums, done = resume["sums"], resume["position"]
        for position in range(done + 1, config.steps_per_epoch + 1):
            path = supernet.sample_path(generator, config.sampling)
            ids = to_device(sample_batch(train_blocks, config.batch_size, generator), device)
            mask = torch.ones_like(ids)
            with amp.autocast():
                losses = path_losses(config.loss, supernet(ids, mask, arch=path), teacher(ids, mask), adapters, mask)
            if not torch.isfinite(losses.total):
                raise FloatingPointError(f"super-network loss became {float(losses.total)} at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            amp.backward(losses.total)
            amp.step(optimizer, [p for m in modules for p in m.parameters()], config.grad_clip)
            step += 1
            for key, value in (("loss", losses.total), ("attention_loss", losses.attention),
                               ("hidden_loss", losses.hidden)):
                sums[key] += value.item()
            if saves is not None and (saves.due() or (epoch, position) == (config.epochs, config.steps_per_epoch)):
                # Before the epoch's growth: a rerun from here grows as this run would have.
                saves.save(step, progress_params(supernet, adapters),
                           {"epoch": epoch, "position": position, "sums": sums, "metrics": metrics,
                            "generator": generator.get_state(), "optimizer": optimizer.state_dict(),
                            "widths": supernet.widths, "amp": amp.state_dict()})
        metrics = {"epoch": float(epoch), "step": float(step), **{k: v / config.steps_per_epoch for k, v in sums.items()}}
        if config.grow and epoch < config.epochs:
            growth = grow_after_epoch(supernet, pca_ids, torch.ones_like(pca_ids), config.growth)
            metrics["grown_blocks"] = float(len(growth.grown))
        widths = [w for row in supernet.widths for w in row]
        metrics["mean_ffn_width"] = sum(widths) / len(widths)
        metrics["supernet_params"] = float(sum(p.numel() for p in supernet.parameters()))
        report(metrics)
    return metrics


def progress_params(supernet: ElmSuperNet, adapters: Adapters) -> list[nn.Parameter]:
    return [*supernet.parameters(), *adapters.parameters()]


def restore_progress(supernet: ElmSuperNet, adapters: Adapters, saves: ProgressSaves) -> dict[str, Any] | None:
    """Grow `supernet` to the newest save's FFN widths and load the save; its loop state, or None."""
    newest = saves.newest()
    if newest is None:
        return None
    for layer, row in enumerate(newest["widths"]):
        for kind, width in zip(BLOCK_KINDS, row):
            ffn = supernet.block(layer, kind).ffn
            if width < ffn.units:
                return None  # not a save of this super-network
            if width > ffn.units:
                ffn.grow(width - ffn.units)  # the new units' values come from the save
    return saves.restore(progress_params(supernet, adapters))


def make_optimizer(modules: Iterable[nn.Module], config: SupernetConfig) -> torch.optim.Optimizer:
    params = [p for m in modules for p in m.parameters()]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
