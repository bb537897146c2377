"""Slicable layers: the super-network computes with the kept rows / columns only.

Masking (as plm_pruning does) keeps the full matrix products, so a small sub-network costs as
much as the full one. Here a selection is either a prefix `slice` (the paper's "first k heads /
units": a view, no copy) or an index tensor (LARGE's arbitrary subsets: one gather per call),
and the matrix products shrink with it.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from trainers.supernet.standalone import Attention, CompactBertConfig, FeedForward, attend

#: rows or columns to keep: a prefix slice, an index tensor, or None for all.
Index = Union[slice, torch.Tensor, None]


def selection(indices: tuple[int, ...], block: int, total: int, device: torch.device) -> Index:
    """Rows of the kept blocks (heads: `block` = head size; units: 1), as cheap as possible."""
    if len(indices) * block == total:
        return None
    if indices == tuple(range(len(indices))):
        return slice(0, len(indices) * block)
    idx = torch.tensor(indices, device=device)
    return (idx[:, None] * block + torch.arange(block, device=device)).reshape(-1)  # (kept * block,)


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """`mask` as added to attention scores: a boolean key mask (True = attend) becomes 0 / the
    dtype's minimum (a key row with no real token then attends uniformly instead of giving NaN);
    an additive one (MPNet's bias) is kept; none is a zero."""
    if mask is None:
        return torch.zeros((), dtype=dtype)
    if mask.is_floating_point():
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


class SlicableLinear(nn.Linear):
    """nn.Linear that can run on a sub-matrix: `rows` of the output, `cols` of the input."""

    def sliced(self, x: torch.Tensor, rows: Index = None, cols: Index = None) -> torch.Tensor:
        return F.linear(x, self.sliced_weight(rows, cols), self.sliced_bias(rows))

    def sliced_weight(self, rows: Index = None, cols: Index = None) -> torch.Tensor:
        w = self.weight if rows is None else self.weight[rows]
        return w if cols is None else w[:, cols]

    def sliced_bias(self, rows: Index = None) -> torch.Tensor | None:
        if self.bias is None or rows is None:
            return self.bias
        return self.bias[rows]

    def sliced_state(self, prefix: str, rows: Index = None, cols: Index = None) -> dict[str, torch.Tensor]:
        """Copies of the selected sub-matrix (and bias), keyed as a dense nn.Linear's state."""
        state = {f"{prefix}weight": self.sliced_weight(rows, cols).detach().clone()}
        bias = self.sliced_bias(rows)
        if bias is not None:
            state[f"{prefix}bias"] = bias.detach().clone()
        return state


def norm_state(norm: nn.LayerNorm, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().clone() for k, v in norm.state_dict().items()}


class SlicedAttention(Attention):
    """Self-attention over a selectable set of heads; heads are contiguous row blocks of Q, K, V
    and column blocks of the output projection. No heads: the block is skipped."""

    def __init__(self, c: CompactBertConfig, heads: int) -> None:
        super().__init__(c, heads, linear=SlicableLinear)
        self.width = heads * c.head_size
        self.rows: Index = None
        self.skip = False

    def _rows(self, heads: tuple[int, ...]) -> Index:
        return selection(heads, self.head_size, self.width, self.query.weight.device)

    def select(self, heads: tuple[int, ...]) -> None:
        self.skip = not heads
        self.rows = self._rows(heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.skip:
            return x
        r, p = self.rows, (self.dropout_p if self.training else 0.0)
        q, k, v = (m.sliced(x, r) for m in (self.query, self.key, self.value))  # type: ignore[operator]
        if p > 0 and x.device.type == "cpu":
            # With dropout, CPU scaled_dot_product_attention takes its math path, whose forward +
            # backward costs ~15 % more than the same operations spelled out (as `attend` does for
            # an additive mask; benchmarks/supernet_speed.py). They draw the same dropout mask.
            mask = additive_mask(mask, x.dtype)
        ctx = attend(q, k, v, mask, self.head_size, p)
        return self.norm(x + self.dropout(self.output.sliced(ctx, cols=r)))  # type: ignore[operator]

    def sliced_state(self, prefix: str, heads: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The weights of a dense `Attention` with only `heads`, keyed under `prefix`."""
        r = self._rows(heads)
        state: dict[str, torch.Tensor] = {}
        for name in ("query", "key", "value"):
            state |= getattr(self, name).sliced_state(f"{prefix}{name}.", rows=r)
        return state | self.output.sliced_state(f"{prefix}output.", cols=r) | norm_state(self.norm, f"{prefix}norm.")  # type: ignore[operator]


class SlicedFeedForward(FeedForward):
    """The FFN over a selectable set of hidden units (rows of `up`, columns of `down`). No units:
    the block is skipped."""

    def __init__(self, c: CompactBertConfig, units: int) -> None:
        super().__init__(c, units, linear=SlicableLinear)
        self.num_units = units
        self.rows: Index = None
        self.skip = False

    def _rows(self, units: tuple[int, ...]) -> Index:
        return selection(units, 1, self.num_units, self.up.weight.device)

    def select(self, units: tuple[int, ...]) -> None:
        self.skip = not units
        self.rows = self._rows(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip:
            return x
        hidden = self.act(self.up.sliced(x, self.rows))  # type: ignore[operator]
        return self.norm(x + self.dropout(self.down.sliced(hidden, cols=self.rows)))  # type: ignore[operator]

    def sliced_state(self, prefix: str, units: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The weights of a dense `FeedForward` with only `units`, keyed under `prefix`."""
        r = self._rows(units)
        up = self.up.sliced_state(f"{prefix}up.", rows=r)  # type: ignore[operator]
        return up | self.down.sliced_state(f"{prefix}down.", cols=r) | norm_state(self.norm, f"{prefix}norm.")  # type: ignore[operator]


class SlicedLayer(nn.Module):
    """One encoder layer of the super-network; a layer with no heads and no units is the identity."""

    def __init__(self, c: CompactBertConfig, heads: int, units: int) -> None:
        super().__init__()
        self.attention = SlicedAttention(c, heads)
        self.ffn = SlicedFeedForward(c, units)

    def select(self, heads: tuple[int, ...], units: tuple[int, ...]) -> None:
        self.attention.select(heads)
        self.ffn.select(units)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.ffn(self.attention(x, mask))
