"""Mask tuning: kept heads and FFN units get real-valued scales that rebuild the unpruned layers.

Kwon et al., "A Fast Post-Training Pruning Framework for Transformers" (NeurIPS 2022), §4.3:
layer by layer, from the bottom, the scales m of the kept entries minimise the layer-wise
reconstruction error || (x + layer(x; 1)) - (x' + layer(x'; m)) ||^2 (pre-LayerNorm outputs),
where x is the unpruned model's input to the layer and x' the pruned model's (already tuned
below). A block's output is linear in its scales (bias + sum_j m_j A_j(x')), so this is a linear
least-squares problem in m, solved from its normal equations (A^T A) m = A^T r accumulated over
the calibration tokens (padding excluded). As in the paper's code, attention heads are tuned
before the FFN of the same layer, the last layer's FFN of a classifier is fitted on the first
([CLS]) token only (the only one the head reads), and tuning stops at the first solution with a
scale outside [-10, 10] (an ill-conditioned fit that would hurt more than help).

Simplified: a small ridge term (relative to the mean diagonal) replaces the paper's LSMR solver,
and heads of the first layer are tuned too.
"""
from __future__ import annotations

import torch

from trainers.baselines.common import batches
from trainers.baselines.masked import LayerRecord, attention_mask_of, layer_forward
from trainers.encode import Encoded
from trainers.supernet import SuperNetwork

#: scales beyond this magnitude mark a fit not worth keeping (the paper's bound).
MAX_SCALE = 10.0
#: ridge term, as a share of the mean diagonal of A^T A.
DAMPING = 1e-6


def solve(ata: torch.Tensor, atb: torch.Tensor) -> torch.Tensor | None:
    """The damped least-squares scales, or None when they are not finite or exceed MAX_SCALE."""
    ridge = DAMPING * float(torch.diagonal(ata).mean().clamp_min(1e-30))
    m = torch.linalg.solve(ata + ridge * torch.eye(len(ata), dtype=ata.dtype), atb)
    return m if bool(torch.isfinite(m).all()) and float(m.abs().max()) <= MAX_SCALE else None


def attention_system(model: SuperNetwork, i: int, target: torch.Tensor, student: LayerRecord, tokens: torch.Tensor,
                     kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal equations of layer i's kept heads over the selected `tokens` (B, S) bool; `target` is
    the unpruned attention block's pre-LayerNorm output (B, S, hidden)."""
    att = model.layers[i].attention
    d = att.head_size
    ctx = student.context[tokens].view(-1, att.output.in_features // d, d)[:, kept]  # (T, K, d)
    w = att.output.weight.t().view(-1, d, att.output.out_features)[kept]  # (K, d, hidden)
    a = torch.einsum("tkd,kdo->tko", ctx, w).double()  # (T, K, hidden): each head's projected output
    r = (target[tokens] - student.attention_in[tokens] - att.output.bias).double()  # (T, hidden)
    return torch.einsum("tko,tjo->kj", a, a), torch.einsum("tko,to->k", a, r)


def ffn_system(model: SuperNetwork, i: int, target: torch.Tensor, student: LayerRecord, tokens: torch.Tensor,
               kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal equations of layer i's kept FFN units: A^T A = (H^T H) * (W^T W) for activations H
    (T, K) and down-projection columns W (hidden, K)."""
    down = model.layers[i].ffn.down
    h = student.units[tokens][:, kept].double()  # (T, K)
    w = down.weight[:, kept].double()  # (hidden, K)
    r = (target[tokens] - student.ffn_in[tokens] - down.bias).double()  # (T, hidden)
    return (h.t() @ h) * (w.t() @ w), (h * (r @ w)).sum(0)


@torch.no_grad()
def tune_masks(model: SuperNetwork, data: Encoded, head_keep: torch.Tensor, unit_keep: torch.Tensor, batch_size: int = 32
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales (L, H) and (L, I) for the kept entries of boolean `head_keep` / `unit_keep` (0 where
    pruned; 1 where tuning stopped early)."""
    s = model.shape
    was_training = model.training
    model.eval()
    heads, units = head_keep.double().clone(), unit_keep.double().clone()
    parts = batches(data, batch_size)
    masks = [attention_mask_of(model, ids, m) for ids, m, _ in parts]
    every = [m.bool() for _, m, _ in parts]
    first = [torch.zeros_like(m, dtype=torch.bool).index_fill_(1, torch.tensor([0]), True) for _, m, _ in parts]
    teacher_in = [model.embeddings(ids, None) for ids, _, _ in parts]
    student_in = list(teacher_in)
    ones_h, ones_u = torch.ones(1, s.num_heads), torch.ones(1, s.intermediate_size)

    def run(x: torch.Tensor, mask: torch.Tensor | None, i: int, h: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, LayerRecord]:
        return layer_forward(model, i, x, mask, h.float().expand(len(x), -1), u.float().expand(len(x), -1))

    stopped = False
    for i in range(s.num_layers):
        # The unpruned layer's outputs: (layer output, attention block target, FFN block target).
        teacher = [(out, rec.attention_out, rec.ffn_out) for out, rec in (run(x, m, i, ones_h, ones_u) for x, m in zip(teacher_in, masks))]
        blocks = [("heads", head_keep[i], attention_system, 1, every),
                  ("units", unit_keep[i], ffn_system, 2, first if i == s.num_layers - 1 else every)]
        for name, kept, system, which, tokens in blocks:
            if stopped or not bool(kept.any()):
                continue
            ata = atb = None
            for t, x, m, tok in zip(teacher, student_in, masks, tokens):
                _, s_rec = run(x, m, i, heads[i:i + 1], units[i:i + 1])
                a, b = system(model, i, t[which], s_rec, tok, kept)
                ata, atb = (a, b) if ata is None else (ata + a, atb + b)
            assert ata is not None and atb is not None
            scale = solve(ata, atb)
            if scale is None:
                stopped = True
                continue
            target = heads if name == "heads" else units
            target[i, kept] = scale
        student_in = [run(x, m, i, heads[i:i + 1], units[i:i + 1])[0] for x, m in zip(student_in, masks)]
        teacher_in = [t[0] for t in teacher]
    model.train(was_training)
    return heads, units


@torch.no_grad()
def apply_scales(model: SuperNetwork, head_scale: torch.Tensor, unit_scale: torch.Tensor) -> SuperNetwork:
    """Fold the scales into `model` in place: a head's scale multiplies its output-projection
    columns, a unit's its down-projection column (exactly the masked forward's effect)."""
    for layer, h, u in zip(model.layers, head_scale, unit_scale):
        att = layer.attention
        att.output.weight.mul_(h.float().repeat_interleave(att.head_size)[None, :])
        layer.ffn.down.weight.mul_(u.float()[None, :])
    return model
