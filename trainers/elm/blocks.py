"""The six candidate blocks of an ELM layer (ELM, §III-A) and their elastic FFN (§III-B).

- BERT block (Devlin et al. 2019): post-norm multi-head attention and FFN at the hidden size.
- MobileBERT block (Sun et al. 2020): a linear bottleneck in (hidden -> inner), attention and FFN at
  the inner width, a linear bottleneck out (inner -> hidden) with a residual at the hidden size; as
  in `trainers/autodistill/student.py`, queries, keys and values all come from the bottleneck.
- Each with no sharing, query = value (one projection serves both) or key = value (likewise), so a
  shared variant has one projection fewer.

The FFN is elastic: a forward may use its first `units` units, and `grow` appends units whose output
weights start at zero, so growing does not change what the block computes. Attention may run with
fewer, wider heads than it was built with (a head count only splits the width). `count_params` in
`search_spaces/elm.py` counts exactly what is created here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search_spaces.base import InvalidArchitectureError
from search_spaces.elm import ElmShape, is_mobile
from trainers.autodistill.student import init_weights


@dataclass(frozen=True)
class BlockOutput:
    hidden: Tensor  # (B, S, hidden): the block's output
    attention: Tensor  # (B, H, S, S): attention probabilities, rows sum to 1
    head_outputs: Tensor  # (B, H, S, width / H): each head's output before the output projection
    ffn_hidden: Tensor  # (B, S, units): the FFN's hidden activations (what PCA growth measures)


class ElasticFFN(nn.Module):
    """width -> units -> width with a residual and a LayerNorm; runs on its first `units` units."""

    def __init__(self, width: int, units: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, units)
        self.outer = nn.Linear(units, width)
        self.norm = nn.LayerNorm(width)

    @property
    def units(self) -> int:
        return self.inner.out_features

    def forward(self, x: Tensor, units: int | None = None) -> tuple[Tensor, Tensor]:
        k = self.units if units is None else units
        if not 1 <= k <= self.units:
            raise InvalidArchitectureError(f"elm: an FFN of {self.units} units cannot run {k}")
        hidden = F.gelu(F.linear(x, self.inner.weight[:k], self.inner.bias[:k]))  # (B, S, k)
        return self.norm(x + F.linear(hidden, self.outer.weight[:, :k], self.outer.bias)), hidden

    @torch.no_grad()
    def grow(self, step: int) -> None:
        """Append `step` units: input weights N(0, 0.02), zero bias, zero output weights."""
        width, old = self.inner.in_features, self.units
        device = self.inner.weight.device
        inner, outer = nn.Linear(width, old + step, device=device), nn.Linear(old + step, width, device=device)
        init_weights(inner)
        inner.weight[:old] = self.inner.weight
        inner.bias[:old] = self.inner.bias
        outer.weight.zero_()
        outer.weight[:, :old] = self.outer.weight
        outer.bias.copy_(self.outer.bias)
        self.inner, self.outer = inner, outer


class SharedAttention(nn.Module):
    """Multi-head self-attention whose value projection may be the query's or the key's (§III-A)."""

    def __init__(self, width: int, num_heads: int, sharing: str) -> None:
        super().__init__()
        if sharing not in ("none", "qv", "kv"):
            raise ValueError(f"sharing must be one of 'none', 'qv', 'kv', got {sharing!r}")
        if width % num_heads:
            raise InvalidArchitectureError(f"elm: {num_heads} heads must divide the attention width {width}")
        self.sharing = sharing
        self.num_heads = num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        # A shared variant registers no value projection of its own, so the parameter exists once.
        self.value = nn.Linear(width, width) if sharing == "none" else None
        self.output = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def projections(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        """(query, key, value); the value is the query (qv) or the key (kv) module in shared variants."""
        value = {"none": self.value, "qv": self.query, "kv": self.key}[self.sharing]
        assert value is not None
        return self.query, self.key, value

    def forward(self, x: Tensor, mask_bias: Tensor, heads: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(B, S, C) -> (output (B, S, C), probabilities (B, H, S, S), head outputs (B, H, S, C / H))."""
        h = self.num_heads if heads is None else heads
        bsz, seq, width = x.shape
        if width % h:
            raise InvalidArchitectureError(f"elm: {h} heads must divide the attention width {width}")
        query, key, value = self.projections()
        split = lambda t: t.view(bsz, seq, h, width // h).transpose(1, 2)  # noqa: E731  (B, S, C) -> (B, H, S, C/H)
        q, k, v = split(query(x)), split(key(x)), split(value(x))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(width // h) + mask_bias).softmax(dim=-1)  # (B, H, S, S)
        heads_out = probs @ v  # (B, H, S, C/H)
        context = heads_out.transpose(1, 2).reshape(bsz, seq, width)  # (B, S, C)
        return self.norm(x + self.output(context)), probs, heads_out


class Block(nn.Module):
    """One candidate block; `kind` is one of search_spaces.elm.BLOCK_KINDS."""

    def __init__(self, shape: ElmShape, kind: str, units: int) -> None:
        super().__init__()
        self.kind = kind
        self.shape = shape
        width = shape.attention_width(kind)
        sharing = kind.partition("_")[2] or "none"
        if is_mobile(kind):
            self.bottleneck_in = nn.Linear(shape.hidden_size, width)
            self.in_norm = nn.LayerNorm(width)
            self.bottleneck_out = nn.Linear(width, shape.hidden_size)
            self.out_norm = nn.LayerNorm(shape.hidden_size)
        self.attention = SharedAttention(width, shape.num_heads, sharing)
        self.ffn = ElasticFFN(width, units)
        self.apply(init_weights)

    def forward(self, x: Tensor, mask_bias: Tensor, units: int | None = None, heads: int | None = None) -> BlockOutput:
        """(B, S, hidden) -> BlockOutput, on the first `units` FFN units with `heads` heads."""
        u = self.in_norm(self.bottleneck_in(x)) if is_mobile(self.kind) else x  # (B, S, width)
        u, probs, heads_out = self.attention(u, mask_bias, heads)
        u, ffn_hidden = self.ffn(u, units)
        out = self.out_norm(x + self.bottleneck_out(u)) if is_mobile(self.kind) else u  # (B, S, hidden)
        return BlockOutput(hidden=out, attention=probs, head_outputs=heads_out, ffn_hidden=ffn_hidden)

    @torch.no_grad()
    def extract(self, units: int, heads: int) -> Block:
        """A standalone copy of this block with its first `units` FFN units and `heads` heads."""
        if not 1 <= units <= self.ffn.units:
            raise InvalidArchitectureError(f"elm: the {self.kind} block has {self.ffn.units} FFN units, cannot keep {units}")
        state = {k: v.clone() for k, v in self.state_dict().items()}
        state["ffn.inner.weight"] = state["ffn.inner.weight"][:units]
        state["ffn.inner.bias"] = state["ffn.inner.bias"][:units]
        state["ffn.outer.weight"] = state["ffn.outer.weight"][:, :units]
        block = Block(self.shape, self.kind, units).to(self.ffn.inner.weight.device)
        block.load_state_dict(state)
        block.attention.num_heads = heads
        return block.train(self.training)


class Embeddings(nn.Module):
    """Word + position + token-type embeddings at the hidden size, then a LayerNorm (BERT layout)."""

    def __init__(self, shape: ElmShape) -> None:
        super().__init__()
        self.word = nn.Embedding(shape.vocab_size, shape.hidden_size)
        self.position = nn.Embedding(shape.max_positions, shape.hidden_size)
        self.token_type = nn.Embedding(shape.type_vocab_size, shape.hidden_size)
        self.norm = nn.LayerNorm(shape.hidden_size)
        self.apply(init_weights)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.norm(self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids))
