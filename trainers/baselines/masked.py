"""The full network with multiplicative masks on attention heads and FFN units.

Mask-based pruning (Michel et al. 2019 §4.1, Kwon et al. 2022 §3) puts a variable on every head's
and FFN unit's output and differentiates the loss with respect to it. Masks here may be given per
example, (batch, L, H) and (batch, L, I): the gradient of the summed loss with respect to row x is
then the gradient of example x's own loss, so one backward pass gives per-example gradients (which
Michel's absolute values and Kwon's Fisher information need). The super-network's own forward
slices instead of masking; this one always computes with every weight and is only used to score
masks. It reads the super-network's modules, so it is independent of the active sub-network.

Unlike slicing, a layer whose heads are all masked keeps its output bias and LayerNorm (masking
cannot remove them); the pruned sub-network is always evaluated sliced.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainers.supernet import SuperNetwork
from trainers.supernet.standalone import attend, key_padding_mask, with_bias


@dataclass
class LayerRecord:
    """What one layer saw and computed, for layer-wise mask tuning (pre-LayerNorm outputs)."""

    attention_in: torch.Tensor  # (B, S, hidden): the attention block's input
    context: torch.Tensor  # (B, S, H * head_size): the heads' outputs before the output projection
    attention_out: torch.Tensor  # (B, S, hidden): input + projected masked context + bias, before LayerNorm
    ffn_in: torch.Tensor  # (B, S, hidden): the FFN block's input
    units: torch.Tensor  # (B, S, I): the FFN units' activations, unmasked
    ffn_out: torch.Tensor  # (B, S, hidden): input + masked units projected + bias, before LayerNorm


def attention_mask_of(model: SuperNetwork, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                      ) -> torch.Tensor | None:
    """The mask every layer's attention takes in the full network: the key-padding mask, plus the
    relative position bias for families that have one (MPNet: one table shared by all layers, so
    one mask serves every layer; masking keeps every head, so every column of the table)."""
    mask = key_padding_mask(attention_mask)
    bias = getattr(model, "relative_bias", None)
    return mask if bias is None else with_bias(bias(input_ids.shape[1]), mask)


def expand(mask: torch.Tensor, batch: int) -> torch.Tensor:
    """A (L, n) mask shared by the batch, or a per-example (batch, L, n) one, as (batch, L, n)."""
    return mask.expand(batch, *mask.shape) if mask.dim() == 2 else mask


def layer_forward(model: SuperNetwork, i: int, x: torch.Tensor, mask: torch.Tensor | None, heads: torch.Tensor,
                  units: torch.Tensor) -> tuple[torch.Tensor, LayerRecord]:
    """Layer i on x (B, S, hidden) with head scales `heads` (B, H) and unit scales `units` (B, I);
    `mask` is the full network's attention mask (attention_mask_of). Returns the layer's output and its record."""
    layer = model.layers[i]
    att, ffn = layer.attention, layer.ffn
    p = att.dropout_p if model.training else 0.0
    ctx = attend(att.query(x), att.key(x), att.value(x), mask, att.head_size, p)  # (B, S, H * d)
    b, s, _ = ctx.shape
    scaled = (ctx.view(b, s, -1, att.head_size) * heads[:, None, :, None]).reshape(b, s, -1)  # (B, S, H * d)
    attention_out = x + att.dropout(att.output(scaled))
    y = att.norm(attention_out)
    act = ffn.act(ffn.up(y))  # (B, S, I)
    ffn_out = y + ffn.dropout(ffn.down(act * units[:, None, :]))
    return ffn.norm(ffn_out), LayerRecord(x, ctx, attention_out, y, act, ffn_out)


def masked_forward(
    model: SuperNetwork,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    head_mask: torch.Tensor,
    unit_mask: torch.Tensor,
    records: list[LayerRecord] | None = None,
) -> torch.Tensor:
    """Logits (B, C) of the full network with heads scaled by `head_mask` ((L, H) or (B, L, H)) and
    FFN units by `unit_mask` ((L, I) or (B, L, I)); appends one LayerRecord per layer to `records`."""
    batch = input_ids.shape[0]
    heads, units = expand(head_mask, batch), expand(unit_mask, batch)
    mask = attention_mask_of(model, input_ids, attention_mask)
    x = model.embeddings(input_ids, None)
    for i in range(len(model.layers)):
        x, record = layer_forward(model, i, x, mask, heads[:, i], units[:, i])
        if records is not None:
            records.append(record)
    return model.head(x, attention_mask)  # mean pooling reads only real tokens


def per_example_mask_grads(
    model: SuperNetwork, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
    head_mask: torch.Tensor, unit_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """d loss(x) / d mask for every example x of the batch at the masks given ((L, H), (L, I)):
    returns (B, L, H) and (B, L, I). The model's parameters get no gradient."""
    batch = input_ids.shape[0]
    heads = head_mask.detach().expand(batch, *head_mask.shape).clone().requires_grad_(True)
    units = unit_mask.detach().expand(batch, *unit_mask.shape).clone().requires_grad_(True)
    logits = masked_forward(model, input_ids, attention_mask, heads, units)
    # Summed (not averaged) so that row x of each gradient is exactly example x's gradient.
    loss = F.cross_entropy(logits, labels, reduction="sum")
    grad_heads, grad_units = torch.autograd.grad(loss, (heads, units))
    return grad_heads, grad_units
