"""The optimisation loop shared by super-network training and sub-network fine-tuning.

AdamW with an optional linear warm-up, a linear decay to zero and gradient clipping at 1 (the
Hugging Face defaults the structural-pruning paper follows, Appendix A). What one step computes is
the caller's: a strategy's update for the super-network, plain cross-entropy for a standalone
sub-network, with its forward under the run's autocast and its backward through `amp.backward`
(`trainers/precision.py`). `param_groups` gives the classification head its own learning rate (`head_lr`).
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from trainers.efficiency import host_busy
from trainers.contract import TrainerError
from trainers.precision import FP32, MixedPrecision, to_device
from trainers.supernet.options import FinetuneOptions
from trainers.progress import ProgressSaves

#: (batch on the device, fraction of training done) -> the step's losses; gradients accumulated.
StepFn = Callable[[Mapping[str, torch.Tensor], float], Mapping[str, float]]
#: (epoch, mean training loss of the epoch) after each epoch.
EpochEnd = Callable[[int, float], None]
Log = Callable[[str], None]


def param_groups(model: torch.nn.Module, options: FinetuneOptions) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: the body at `lr`, the head (`head.*`: pooler and
    classifier) at `head_lr` (when set)."""
    named = list(model.named_parameters())
    if options.head_lr is None:
        return [{"params": [p for _, p in named]}]
    head = [p for n, p in named if n.startswith("head.")]
    body = [p for n, p in named if not n.startswith("head.")]
    return [{"params": body}, {"params": head, "lr": options.head_lr}]


def cross_entropy_step(model: torch.nn.Module, amp: MixedPrecision = FP32) -> StepFn:
    """The step of a classifier trained on its own: cross-entropy on the labels, forward in `amp`'s precision."""

    def step(batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, float]:
        with amp.autocast():
            loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        amp.backward(loss)
        return {"loss": float(loss.detach())}

    return step


def lr_factor(step: int, total: int, warmup: float) -> float:
    """The learning rate's multiplier at `step` of `total`: linear rise over the first `warmup`
    fraction of the steps, then linear decay to 0 (Hugging Face's linear schedule)."""
    rise = int(warmup * total)
    if step < rise:
        return (step + 1) / (rise + 1)
    return max(0.0, (total - step) / max(1, total - rise))


def fit(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], loader: DataLoader, options: FinetuneOptions,
        device: torch.device, step_fn: StepFn, on_epoch: EpochEnd | None = None, log: Log | None = None,
        log_every: int = 10, saves: ProgressSaves | None = None, amp: MixedPrecision = FP32) -> list[dict[str, float]]:
    """Run `options.epochs` epochs; returns the logged trace [{step, epoch, loss, <role>: loss, ...}]:
    `loss` is the mean over the step's losses, each role's (e.g. "largest") its own mean. `params`
    are parameters or parameter groups (`param_groups`). With `saves`, the loop continues from the
    newest save found there and saves its state every `saves.every_s` seconds of training, so an
    interrupted run ends with the weights an uninterrupted one would have. `amp` (the precision the
    step functions ran in) clips and steps: for fp16 it unscales the gradients first."""
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    params = [p for g in groups for p in g["params"]]
    total = options.epochs * len(loader)
    optimizer = torch.optim.AdamW(groups, lr=options.lr, weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, options.warmup))
    started, trace, step = time.monotonic(), [], 0
    # Where the loop stands inside an epoch: batches done, and the shuffle's generator as the epoch began.
    first_epoch, position, order, window, epoch_losses = 1, 0, None, [], []
    restored = saves.restore(params) if saves is not None else None
    if restored is not None and restored["total"] == total:
        optimizer.load_state_dict(restored["optimizer"])
        schedule.load_state_dict(restored["schedule"])
        amp.load_state_dict(restored.get("amp"))
        step, first_epoch, position, order = restored["step"], restored["epoch"], restored["position"], restored["order"]
        trace, window, epoch_losses = restored["trace"], restored["window"], restored["epoch_losses"]
        if log is not None:
            log(f"continuing from the save of step {step}/{total}")
    for epoch in range(first_epoch, options.epochs + 1):
        shuffle = loader.generator
        if epoch == first_epoch and order is not None and shuffle is not None:
            shuffle.set_state(order)  # the interrupted epoch's order again; its first `position` batches are done
        order = shuffle.get_state() if shuffle is not None else None
        batches = itertools.islice(iter(loader), position if epoch == first_epoch else 0, None)
        if epoch != first_epoch:
            window, epoch_losses = [], []
        for batch in batches:
            # One step is one host_busy section: a latency measurement on this host waits for it to
            # end and holds back the next one, so no trial times its forwards beside this training.
            with host_busy():
                batch = to_device(dict(batch), device)
                optimizer.zero_grad(set_to_none=True)
                losses = dict(step_fn(batch, step / total))
                loss = float(np.mean(list(losses.values())))
                if not math.isfinite(loss):
                    raise TrainerError(f"training diverged at step {step + 1} (loss {loss}); lower option 'lr'")
                amp.step(optimizer, params, 1.0)
                schedule.step()
            step += 1
            window.append(losses)
            epoch_losses.append(loss)
            if step % log_every == 0 or step == total:
                trace.append({"step": step, "epoch": epoch, **window_means(window)})
                window = []
            if saves is not None and step < total and saves.due():
                saves.save(step, params, {"total": total, "epoch": epoch, "position": len(epoch_losses),
                                          "order": order, "trace": trace, "window": window,
                                          "epoch_losses": epoch_losses, "optimizer": optimizer.state_dict(),
                                          "schedule": schedule.state_dict(), "amp": amp.state_dict()})
            if log is not None and trace and trace[-1]["step"] == step:
                log(f"step {step}/{total} epoch {epoch} {describe(trace[-1])} ({time.monotonic() - started:.0f}s)")
        if on_epoch is not None:
            on_epoch(epoch, float(np.mean(epoch_losses)))
    return trace


def window_means(window: list[Mapping[str, float]]) -> dict[str, float]:
    """Mean loss over the window's steps, and per role over the steps that trained it."""
    roles = sorted({k for losses in window for k in losses})
    means = {"loss": float(np.mean([np.mean(list(losses.values())) for losses in window]))}
    return means | {r: float(np.mean([losses[r] for losses in window if r in losses])) for r in roles}


def describe(entry: Mapping[str, float]) -> str:
    """'loss 0.512 (largest 0.301, smallest 0.690)' for a trace entry."""
    roles = [k for k in entry if k not in ("step", "epoch", "loss")]
    detail = f" ({', '.join(f'{r} {entry[r]:.3f}' for r in roles)})" if len(roles) > 1 else ""
    return f"loss {entry['loss']:.4f}{detail}"
