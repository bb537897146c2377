"""Head pruning by gradient importance, without retraining.

Michel, Levy and Neubig, "Are Sixteen Heads Really Better than One?" (NeurIPS 2019), §4.1: a
gate xi_h multiplies the output of every head h, and its importance is the expected sensitivity
of the loss to it, I_h = E_x |dL(x)/dxi_h| (eq. 2), taken at xi = 1 on the fine-tuned model;
scores are normalised per layer by their l2 norm (§4.1, following Molchanov et al. 2017). Heads
are pruned in order of increasing importance, a fixed share of the heads at a time, and the
scores are recomputed on the pruned model between steps (the paper's iterative procedure). Each
step gives one model; Klein et al. (structural-pruning-via-nas.txt, §4.2, "HP") collect them as a
Pareto set. FFN units are never pruned.

Here dL(x)/dxi_h is exact per example (per-example masks, see masked.py); the paper's reference
code takes the absolute value of mini-batch gradients instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch

from trainers.baselines.common import BaselineData, batches, calibration_rows, baseline_table, score, sub_network_of
from trainers.baselines.masked import per_example_mask_grads
from trainers.encode import Encoded
from trainers.supernet import SuperNetwork

METHOD = "head_pruning"


@dataclass(frozen=True)
class HeadPruningOptions:
    """`step`: the share of all heads pruned between two evaluations; `importance_examples`: training
    rows the importance is estimated on (None: all)."""

    step: float = 0.1
    importance_examples: int | None = 512
    batch_size: int = 32
    normalize_layers: bool = True
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.importance_examples is not None and self.importance_examples < 1:
            raise ValueError(f"importance_examples must be >= 1 or None, got {self.importance_examples}")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def head_importance(model: SuperNetwork, data: Encoded, head_mask: torch.Tensor, batch_size: int = 32,
                    normalize_layers: bool = True) -> torch.Tensor:
    """I_h = mean over examples of |dL(x)/dxi_h| at gates `head_mask` (L, H); returns (L, H),
    each layer divided by its l2 norm when `normalize_layers`."""
    s = model.shape
    units = torch.ones(s.num_layers, s.intermediate_size)
    was_training = model.training
    model.eval()
    total = torch.zeros(s.num_layers, s.num_heads)
    for ids, mask, labels in batches(data, batch_size):
        grad_heads, _ = per_example_mask_grads(model, ids, mask, labels, head_mask, units)  # (B, L, H)
        total += grad_heads.abs().sum(0)
    model.train(was_training)
    importance = total / len(data)
    if normalize_layers:
        importance = importance / (importance.norm(dim=1, keepdim=True) + 1e-20)
    return importance


def head_pruning(model: SuperNetwork, data: BaselineData, options: HeadPruningOptions = HeadPruningOptions()) -> pd.DataFrame:
    """Prune the heads of a fine-tuned super-network step by step by gradient importance; one row per
    step, from all heads to none (config: {"heads_kept": n})."""
    s = model.shape
    calibration = calibration_rows(data.train, options.importance_examples)
    keep = torch.ones(s.num_layers, s.num_heads, dtype=torch.bool)
    units = torch.ones(s.num_layers, s.intermediate_size, dtype=torch.bool)
    per_step = max(1, math.ceil(options.step * keep.numel()))
    rows = [{**score(model, sub_network_of(keep, units), data.validation, options.eval_batch_size), "config": {"heads_kept": keep.numel()}}]
    while keep.any():
        importance = head_importance(model, calibration, keep.float(), options.batch_size, options.normalize_layers)
        importance[~keep] = math.inf  # pruned heads stay pruned
        n = min(per_step, int(keep.sum()))
        lowest = torch.argsort(importance.flatten())[:n]
        keep.view(-1)[lowest] = False
        sub = sub_network_of(keep, units)
        rows.append({**score(model, sub, data.validation, options.eval_batch_size), "config": {"heads_kept": int(keep.sum())}})
    return baseline_table(METHOD, rows)
