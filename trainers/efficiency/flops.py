"""FLOPs of a forward pass: analytic for BERT-like encoders, counted for arbitrary models.

A multiply-add counts as 2 FLOPs, the convention of `torch.utils.flop_counter` (and of most NAS
papers that report FLOPs). The analytic count covers every matrix product of a BERT encoder with
per-layer heads and FFN units (structural-pruning-via-nas.txt, §3 and §3.3: heads and FFN units
removed per layer): the Q/K/V and output projections, the attention scores QKᵀ and the context
(scores · V), the two FFN projections, the pooler and the classifier. It excludes the work that is
not a matrix product (one or a few operations per activation, small next to the products): embedding
look-ups, bias and residual additions, layer normalisation, softmax, score scaling and masking,
GELU/tanh and dropout. The sequence length is the padded length: attention over padding is computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from trainers.efficiency.inputs import Inputs, call_model


@dataclass(frozen=True)
class ForwardShape:
    """The sizes that decide a BERT-like encoder's forward FLOPs: one forward pass of a (possibly
    pruned) encoder at a batch and sequence length. The encoder's own dimensions, which a search
    space cuts sub-networks from, are `search_spaces.sub_network.EncoderShape`.

    `heads_per_layer[i]` and `ffn_per_layer[i]` are layer i's attention heads and FFN units; a layer
    with 0 heads (or 0 units) skips that block entirely. `num_labels=0` means no classifier and
    `pooler=False` no pooler (a bare encoder).
    """

    hidden: int
    head_dim: int
    heads_per_layer: tuple[int, ...]
    ffn_per_layer: tuple[int, ...]
    seq_len: int = 128
    batch: int = 1
    num_labels: int = 2
    pooler: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "head_dim", "seq_len", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_labels < 0:
            raise ValueError(f"num_labels must be >= 0 (0: no classifier), got {self.num_labels}")
        if len(self.heads_per_layer) != len(self.ffn_per_layer):
            raise ValueError(
                f"heads_per_layer and ffn_per_layer must have one entry per layer, got "
                f"{len(self.heads_per_layer)} and {len(self.ffn_per_layer)}"
            )
        if any(h < 0 for h in self.heads_per_layer):
            raise ValueError(f"heads_per_layer must be >= 0 each, got {self.heads_per_layer}")
        if any(f < 0 for f in self.ffn_per_layer):
            raise ValueError(f"ffn_per_layer must be >= 0 each, got {self.ffn_per_layer}")

    @classmethod
    def from_config(cls, config: Any, seq_len: int = 128, batch: int = 1, pooler: bool = True) -> ForwardShape:
        """The full (unpruned) shape of a Hugging Face BERT-like config."""
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        return cls(
            hidden=config.hidden_size,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            heads_per_layer=(heads,) * layers,
            ffn_per_layer=(config.intermediate_size,) * layers,
            seq_len=seq_len,
            batch=batch,
            num_labels=config.num_labels,
            pooler=pooler,
        )


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward FLOPs by part. `attention_matmul` is QKᵀ plus scores·V (what SDPA kernels do)."""

    attention_proj: int
    attention_matmul: int
    ffn: int
    pooler: int
    classifier: int

    @property
    def linear(self) -> int:
        """FLOPs of the `nn.Linear` layers (everything but the attention matmuls)."""
        return self.attention_proj + self.ffn + self.pooler + self.classifier

    @property
    def total(self) -> int:
        return self.linear + self.attention_matmul


def encoder_flops(shape: ForwardShape) -> FlopBreakdown:
    """Analytic forward FLOPs of a BERT-like encoder (see the module docstring for what counts)."""
    tokens = shape.batch * shape.seq_len
    d, k, s = shape.hidden, shape.head_dim, shape.seq_len
    proj = matmul = ffn = 0
    for heads, units in zip(shape.heads_per_layer, shape.ffn_per_layer):
        inner = heads * k
        # Q, K, V: (tokens, d) @ (d, inner); output: (tokens, inner) @ (inner, d).
        proj += 4 * 2 * tokens * d * inner
        # per head: (s, k) @ (k, s) scores, then (s, s) @ (s, k) context.
        matmul += 2 * (2 * shape.batch * heads * s * s * k)
        # (tokens, d) @ (d, units), then (tokens, units) @ (units, d).
        ffn += 2 * (2 * tokens * d * units)
    # The pooler and classifier see only the first token of each sequence: (batch, d).
    pooler = 2 * shape.batch * d * d if shape.pooler else 0
    classifier = 2 * shape.batch * d * shape.num_labels
    return FlopBreakdown(attention_proj=proj, attention_matmul=matmul, ffn=ffn, pooler=pooler, classifier=classifier)


def _cpu_sdpa_flop(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# torch counts the CUDA SDPA kernels but not the CPU flash kernel that `F.scaled_dot_product_attention`
# dispatches to on CPU; without this an HF model's attention would count as 0 FLOPs on CPU.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_flops(model: nn.Module, inputs: Inputs) -> int:
    """FLOPs of one eval-mode forward of `model` on `inputs`, counted by `FlopCounterMode`.

    Counts matrix products and convolutions (what torch's counter knows), 2 FLOPs per multiply-add.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
            call_model(model, inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
