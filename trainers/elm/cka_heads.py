"""CKA-based head-number search (ELM §III-B, Algorithm 1; linear CKA of Kornblith et al. 2019).

For each layer of the searched architecture, the outputs of its attention heads on held-out text are
compared pairwise with linear centred kernel alignment. Walking the heads in order, every later head
whose CKA with a kept head exceeds `eta` (0.9 in the paper) is removed as redundant; the remaining
count is then lowered until it divides the layer's attention width, so the width splits into equal,
wider heads. Algorithm 1 removes on Q[i, j] > eta (strictly); so does `head_number_search`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from search_spaces.elm import ElmArch, LayerChoice
from trainers.elm.supernet import ElmModel, ElmSuperNet

#: the paper's threshold (§III-B).
ETA = 0.9


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between (N, d1) and (N, d2) representations of the same N examples, in [0, 1]."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need (N, d1) and (N, d2) with the same N, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    cross = (y.T @ x).pow(2).sum()  # ||Y^T X||_F^2
    norm = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / norm) if norm > 0 else 0.0


def cka_matrix(head_outputs: Tensor) -> Tensor:
    """(H, N, d) per-head outputs -> (H, H) symmetric matrix of pairwise linear CKA (ones on the diagonal)."""
    heads = head_outputs.shape[0]
    q = torch.eye(heads, dtype=torch.float64)
    for i in range(heads):
        for j in range(i + 1, heads):
            q[i, j] = q[j, i] = linear_cka(head_outputs[i], head_outputs[j])
    return q


def head_number_search(q: Tensor, channels: int, eta: float = ETA) -> int:
    """Algorithm 1: heads kept from the (H, H) CKA matrix `q`, then lowered until they divide `channels`."""
    heads = q.shape[0]
    if q.shape != (heads, heads) or heads < 1:
        raise ValueError(f"the CKA matrix must be square (H, H), got {tuple(q.shape)}")
    if not 0.0 < eta <= 1.0:
        raise ValueError(f"eta must be in (0, 1], got {eta}")
    removed: set[int] = set()
    for i in range(heads):
        if i in removed:
            continue
        for j in range(i + 1, heads):
            if q[i, j] > eta:
                removed.add(j)
    kept = heads - len(removed)
    while channels % kept:
        kept -= 1
    return kept


@torch.no_grad()
def search_heads(model: ElmSuperNet | ElmModel, arch: ElmArch, input_ids: Tensor, attention_mask: Tensor,
                 eta: float = ETA) -> ElmArch:
    """`arch` with each layer's head count chosen by Algorithm 1 on this batch's real tokens."""
    was_training = model.training
    model.eval()
    if isinstance(model, ElmSuperNet):
        out = model(input_ids, attention_mask, arch=arch)
    else:
        out = model(input_ids, attention_mask)
    model.train(was_training)
    real = attention_mask.bool()  # (B, S)
    layers = []
    for choice, layer in zip(arch.layers, out.layers):
        per_head = layer.head_outputs.permute(1, 0, 2, 3)[:, real]  # (B, H, S, d) -> (H, tokens, d)
        width = arch.shape.attention_width(choice.kind)
        layers.append(LayerChoice(choice.kind, choice.ffn, head_number_search(cka_matrix(per_head), width, eta)))
    return ElmArch(arch.shape, tuple(layers))
