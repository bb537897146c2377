"""Retraining-free pruning with Fisher information (mask search, mask rearrangement, mask tuning).

Kwon et al., "A Fast Post-Training Pruning Framework for Transformers" (NeurIPS 2022):
- §4.1 mask search: the loss increase of pruning mask entries is approximated by the diagonal
  Fisher information of the masks, I_jj = sum_x (dL(x)/dm_j)^2, on a few thousand training
  examples. Under a cost constraint, for every number of kept heads the remaining budget goes to
  FFN units, heads and units taken globally in order of Fisher information; the split with the
  largest kept information wins (Algorithm 1).
- §4.2 mask rearrangement: with the number kept per layer fixed, which heads (units) of a layer
  are pruned is re-chosen against the layer's block of the full Fisher matrix, minimising
  (1 - m)^T I_l (1 - m) greedily (Algorithm 2).
- §4.3 mask tuning (fisher_tuning.py): the kept entries become real scales fitted layer by layer
  to the unpruned model's layer outputs by linear least squares.
Klein et al. (structural-pruning-via-nas.txt, §4.2, "RFP") run it at several constraints to get a
Pareto set in the LARGE space.

Simplified here: the constraint is on non-embedding parameters (the axis the comparison uses)
instead of FLOPs or latency; per-block constants (output biases, LayerNorms) are charged as if
every block were kept, so the budget holds exactly. Gradients are per example (the paper's
definition; its code uses mini-batch gradients).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from search_spaces.sub_network import EncoderShape, SubNetwork, count_params
from trainers.baselines.common import BaselineData, batches, calibration_rows, baseline_table, score, sub_network_of
from trainers.baselines.fisher_tuning import apply_scales, tune_masks
from trainers.baselines.masked import per_example_mask_grads
from trainers.encode import Encoded
from trainers.supernet import SuperNetwork

METHOD = "fisher_pruning"


@dataclass(frozen=True)
class FisherPruningOptions:
    """`budgets`: kept shares of the non-embedding parameters, one model each;
    `calibration_examples`: training rows for the Fisher information and mask tuning (paper: 2,048)."""

    budgets: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
    calibration_examples: int | None = 2048
    batch_size: int = 32
    rearrange: bool = True
    tune: bool = True
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.budgets or any(not 0 < b <= 1 for b in self.budgets):
            raise ValueError(f"budgets must be shares in (0, 1], got {list(self.budgets)}")
        if self.calibration_examples is not None and self.calibration_examples < 1:
            raise ValueError(f"calibration_examples must be >= 1 or None, got {self.calibration_examples}")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class MaskGradients:
    """Per-example gradients of the loss with respect to the masks at m = 1."""

    heads: torch.Tensor  # (N, L, H)
    units: torch.Tensor  # (N, L, I)

    def fisher_diagonal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, H) and (L, I): sum over examples of the squared gradients."""
        return self.heads.pow(2).sum(0), self.units.pow(2).sum(0)


def mask_gradients(model: SuperNetwork, data: Encoded, batch_size: int = 32) -> MaskGradients:
    s = model.shape
    was_training = model.training
    model.eval()
    heads, units = [], []
    for ids, mask, labels in batches(data, batch_size):
        g_heads, g_units = per_example_mask_grads(model, ids, mask, labels, torch.ones(s.num_layers, s.num_heads),
                                                  torch.ones(s.num_layers, s.intermediate_size))
        heads.append(g_heads)
        units.append(g_units)
    model.train(was_training)
    return MaskGradients(torch.cat(heads), torch.cat(units))


def unit_costs(shape: EncoderShape) -> tuple[int, int, int]:
    """(parameters of one head, of one FFN unit, of everything else non-embedding with every block kept)."""
    d, hid = shape.head_size, shape.hidden_size
    head = 4 * d * hid + 3 * d  # Q, K, V rows + biases, output projection columns
    unit = 2 * hid + 1  # up row + bias, down column
    full = count_params(shape, SubNetwork.full(shape))["params_non_embedding"]
    return head, unit, full - shape.num_layers * (shape.num_heads * head + shape.intermediate_size * unit)


def search_mask(shape: EncoderShape, fisher_heads: torch.Tensor, fisher_units: torch.Tensor, max_params: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 under a non-embedding parameter budget: boolean (L, H) and (L, I) keep-masks."""
    head_cost, unit_cost, fixed = unit_costs(shape)
    if max_params < fixed:
        raise ValueError(f"a budget of {max_params:,} non-embedding parameters is below the {fixed:,} that cannot be pruned")
    head_values, head_order = fisher_heads.flatten().sort(descending=True)
    unit_values, unit_order = fisher_units.flatten().sort(descending=True)
    head_gain = torch.cat([torch.zeros(1, dtype=torch.float64), head_values.double().cumsum(0)])
    unit_gain = torch.cat([torch.zeros(1, dtype=torch.float64), unit_values.double().cumsum(0)])
    best, best_split = -1.0, (0, 0)
    for n_heads in range(len(head_values) + 1):
        left = max_params - fixed - n_heads * head_cost
        if left < 0:
            break
        n_units = min(left // unit_cost, len(unit_values))
        gain = float(head_gain[n_heads] + unit_gain[n_units])
        if gain > best:
            best, best_split = gain, (n_heads, n_units)
    heads = torch.zeros(fisher_heads.numel(), dtype=torch.bool)
    units = torch.zeros(fisher_units.numel(), dtype=torch.bool)
    heads[head_order[:best_split[0]]] = True
    units[unit_order[:best_split[1]]] = True
    return heads.view_as(fisher_heads), units.view_as(fisher_units)


def rearrange(keep: torch.Tensor, fisher_block: torch.Tensor) -> torch.Tensor:
    """Algorithm 2 for one layer's heads (or units): the same number pruned, re-chosen greedily to
    minimise (1 - m)^T I (1 - m) for the (n, n) Fisher block I.

    Start from the entries with the least diagonal information; each next entry (in increasing
    order) joins the pruned set and the member whose removal lowers the objective most leaves it.
    Leaving costs ||sum_P g - g_j||^2 = const - 2 sum_{p in P} I_pj + I_jj, tracked incrementally.
    """
    n = keep.numel()
    pruned_count = n - int(keep.sum())
    if pruned_count in (0, n):
        return keep.clone()
    block = fisher_block.double().numpy()
    diag = np.diagonal(block)
    order = np.argsort(diag, kind="stable")
    pruned = np.zeros(n, dtype=bool)
    pruned[order[:pruned_count]] = True
    s = block[pruned].sum(0)  # (n,): sum over the pruned set of I_pj
    for candidate in order[pruned_count:]:
        pruned[candidate] = True
        s += block[candidate]
        leave = int(np.argmin(np.where(pruned, diag - 2 * s, np.inf)))
        pruned[leave] = False
        s -= block[leave]
    return torch.from_numpy(~pruned)


def fisher_blocks(grads: torch.Tensor) -> torch.Tensor:
    """(N, L, n) per-example gradients -> (L, n, n) per-layer Fisher blocks sum_x g g^T."""
    g = grads.double()
    return torch.einsum("xli,xlj->lij", g, g)


def fisher_pruning(model: SuperNetwork, data: BaselineData, options: FisherPruningOptions = FisherPruningOptions()) -> pd.DataFrame:
    """Prune a fine-tuned super-network to each budget without retraining; one row per budget
    (config: {"budget": share}). `model` is left as it was."""
    s = model.shape
    calibration = calibration_rows(data.train, options.calibration_examples)
    grads = mask_gradients(model, calibration, options.batch_size)
    fisher_heads, fisher_units = grads.fisher_diagonal()
    blocks = (fisher_blocks(grads.heads), fisher_blocks(grads.units)) if options.rearrange else None
    full = count_params(s, SubNetwork.full(s))["params_non_embedding"]
    rows = []
    for budget in options.budgets:
        heads, units = search_mask(s, fisher_heads, fisher_units, int(budget * full))
        if blocks is not None:
            heads = torch.stack([rearrange(heads[i], blocks[0][i]) for i in range(s.num_layers)])
            units = torch.stack([rearrange(units[i], blocks[1][i]) for i in range(s.num_layers)])
        pruned = model
        if options.tune:
            head_scale, unit_scale = tune_masks(model, calibration, heads, units, options.batch_size)
            pruned = apply_scales(copy.deepcopy(model), head_scale, unit_scale)
        rows.append({**score(pruned, sub_network_of(heads, units), data.validation, options.eval_batch_size), "config": {"budget": budget}})
    return baseline_table(METHOD, rows)
