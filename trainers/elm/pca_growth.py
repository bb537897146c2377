"""PCA-guided FFN growth (ELM §III-B, Fig. 1, Algorithm 2 lines 2-5, Appendix A).

Every block's FFN starts at a quarter of the hidden size. After each training epoch the PCA score of
each block is measured on held-out text — the number of principal components of the block's FFN
hidden activations needed to explain `variance` of their variance (the dimension that a fixed PCA
value corresponds to, Fig. 1) — and the `top_k` blocks with the highest scores grow by `step`
units, up to `max_units` each, while the super-network stays within its parameter budget. The paper
grows 21 of 72 blocks per epoch by a quarter of the hidden size up to twice the hidden size, so that
the mean FFN width ends near the hidden size; those are the defaults here (top_k: 21/72 of the blocks;
budget: the super-network with every FFN at the hidden size).

Scores are measured per block on the path that uses that block kind in every layer, so all blocks
are scored with the same six forwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor

from search_spaces.elm import BLOCK_KINDS
from trainers.efficiency import count_params
from trainers.elm.supernet import ElmSuperNet

#: a block of the super-network: (layer index, block kind).
BlockId = tuple[int, str]


@dataclass(frozen=True)
class GrowthConfig:
    #: blocks grown after each epoch; null: round(21/72 of the blocks), the paper's ratio.
    top_k: int | None = None
    #: units added per growth; null: a quarter of the hidden size.
    step: int | None = None
    #: the most units an FFN may reach; null: twice the hidden size.
    max_units: int | None = None
    #: super-network parameters growth may not exceed; null: every FFN at the hidden size.
    budget: float | None = None
    #: the explained-variance fraction whose component count is a block's PCA score.
    variance: float = 0.99

    def __post_init__(self) -> None:
        for name in ("top_k", "step", "max_units"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"option 'growth_{name}' must be >= 1 or null, got {value}")
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"option 'growth_budget' must be > 0 or null, got {self.budget}")
        if not 0.0 < self.variance <= 1.0:
            raise ValueError(f"option 'growth_variance' must be in (0, 1], got {self.variance}")


@dataclass(frozen=True)
class GrowthStep:
    scores: dict[BlockId, int]
    grown: tuple[BlockId, ...]
    params: int
    budget: float


def pca_components(hidden: Tensor, variance: float) -> int:
    """Components of (N, d) activations needed to explain `variance` of their total variance."""
    centred = hidden.double() - hidden.double().mean(0, keepdim=True)
    energy = torch.linalg.svdvals(centred).pow(2)  # (min(N, d),) descending
    total = energy.sum()
    if total <= 0:
        return 0
    explained = energy.cumsum(0) / total
    return int(torch.searchsorted(explained, torch.tensor(variance, dtype=explained.dtype) - 1e-12)) + 1


@torch.no_grad()
def pca_scores(supernet: ElmSuperNet, input_ids: Tensor, attention_mask: Tensor, variance: float) -> dict[BlockId, int]:
    """The PCA score of every block, from the FFN activations at real tokens of the given batch."""
    was_training = supernet.training
    supernet.eval()
    real = attention_mask.bool()  # (B, S)
    scores = {}
    for kind in BLOCK_KINDS:
        out = supernet(input_ids, attention_mask, arch=supernet.full_path(kind))
        for i, layer in enumerate(out.layers):
            scores[(i, kind)] = pca_components(layer.ffn_hidden[real], variance)  # (tokens, units) -> int
    supernet.train(was_training)
    return scores


def unit_cost(supernet: ElmSuperNet, block: BlockId) -> int:
    """Parameters one more FFN unit adds: an input row with its bias and an output column."""
    width = supernet.block(*block).ffn.inner.in_features
    return 2 * width + 1


def default_budget(supernet: ElmSuperNet) -> int:
    """Parameters of the super-network with every FFN at the hidden size (Appendix A's target); the
    same before and after growth, since it adds back what growth took."""
    target = supernet.shape.hidden_size
    extra = sum((target - supernet.block(i, k).ffn.units) * unit_cost(supernet, (i, k))
                for i in range(supernet.shape.num_layers) for k in BLOCK_KINDS)
    return count_params(supernet).total + extra


def plan_growth(scores: Mapping[BlockId, float], units: Mapping[BlockId, int], costs: Mapping[BlockId, int],
                params: int, budget: float, top_k: int, step: int, max_units: int) -> list[BlockId]:
    """Up to `top_k` blocks by descending score (ties: earlier layer, then block order) that can take
    `step` more units without passing `max_units` or the budget."""
    order = sorted(scores, key=lambda b: (-scores[b], b[0], BLOCK_KINDS.index(b[1])))
    chosen: list[BlockId] = []
    for block in order:
        if len(chosen) == top_k:
            break
        cost = step * costs[block]
        if units[block] + step <= max_units and params + cost <= budget:
            chosen.append(block)
            params += cost
    return chosen


def resolve(config: GrowthConfig, supernet: ElmSuperNet) -> tuple[int, int, int, float]:
    """(top_k, step, max_units, budget) with the paper's defaults filled in."""
    hidden = supernet.shape.hidden_size
    blocks = supernet.shape.num_layers * len(BLOCK_KINDS)
    top_k = config.top_k if config.top_k is not None else max(1, round(blocks * 21 / 72))
    step = config.step if config.step is not None else max(1, hidden // 4)
    max_units = config.max_units if config.max_units is not None else 2 * hidden
    budget = config.budget if config.budget is not None else default_budget(supernet)
    return top_k, step, max_units, budget


def grow_after_epoch(supernet: ElmSuperNet, input_ids: Tensor, attention_mask: Tensor, config: GrowthConfig) -> GrowthStep:
    """Score every block and grow the chosen ones in place."""
    top_k, step, max_units, budget = resolve(config, supernet)
    scores = pca_scores(supernet, input_ids, attention_mask, config.variance)
    blocks: Sequence[BlockId] = list(scores)
    units = {b: supernet.block(*b).ffn.units for b in blocks}
    costs = {b: unit_cost(supernet, b) for b in blocks}
    params = count_params(supernet).total
    grown = plan_growth(scores, units, costs, params, budget, top_k, step, max_units)
    for block in grown:
        supernet.block(*block).ffn.grow(step)
    return GrowthStep(scores=scores, grown=tuple(grown), params=count_params(supernet).total, budget=budget)
