"""ELM's distillation objectives with a switch between the classic and the relational losses (ELM §III-C).

- "classic": Eq. 1 (KL of class outputs), Eq. 2 (squared error of attention maps) and Eq. 3
  (squared error of block outputs, divided by the teacher layer's mean square — a constant, so
  Eq. 3's minimiser is unchanged; it keeps layers of different scale equally weighted);
- "pearson": Eq. 4 (1 - Pearson's rho per example's class outputs) and Eq. 5 (1 - rho per token,
  for attention rows over their real keys, and block outputs), scale-and-shift invariant, which
  keeps blocks diverse. The class outputs also get DIST's intra-class term, weighted by the option
  `intra_class_weight`: Eq. 4 alone cannot train a two-class head (`trainers/distill/losses.py`).

Attention maps are compared as probabilities (what the teacher exposes), each (head, query) row a
distribution over keys, after `align_heads` gives both sides a common head count. Student block
outputs reach the teacher's width through one dense adapter per layer (`make_adapter`), and
student layer l is distilled from teacher layer ceil(l * L_T / L) (`teacher_layer`). Each term is
averaged over the L student layers, as Eq. 2, 3 and 5 are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from trainers.distill.losses import (align_heads, feature_mse, logit_kl, pearson_feature_loss, relational_class_loss,
                                     relative_feature_mse)
from trainers.distill.teacher import TeacherOutput
from trainers.distill.transfer import make_adapter, teacher_layer
from trainers.elm.supernet import ElmOutput

LossKind = Literal["pearson", "classic"]
LOSS_KINDS: tuple[str, ...] = ("pearson", "classic")


def check_loss_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"option 'loss' must be one of {', '.join(LOSS_KINDS)}, got {kind!r}")


@dataclass(frozen=True)
class PathLosses:
    attention: Tensor
    hidden: Tensor

    @property
    def total(self) -> Tensor:
        return self.attention + self.hidden


class Adapters(nn.Module):
    """One student-hidden -> teacher-hidden adapter per student layer (identity when the widths agree)."""

    def __init__(self, num_layers: int, hidden_size: int, teacher_hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(make_adapter(hidden_size, teacher_hidden) for _ in range(num_layers))

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]


def attention_rows(probs: Tensor) -> Tensor:
    """(B, H, S, S) -> (B, H * S, S): one row per (head, query position)."""
    bsz, heads, seq, keys = probs.shape
    return probs.reshape(bsz, heads * seq, keys)


def row_mask(mask: Tensor | None, heads: int) -> Tensor | None:
    """(B, S) query mask -> (B, H * S), in the row order of `attention_rows`."""
    return None if mask is None else mask.repeat(1, heads)


def attention_loss(kind: str, teacher: Tensor, student: Tensor, mask: Tensor | None) -> Tensor:
    """Eq. 2 (classic) or Eq. 5 on attention rows (pearson) for one layer's (B, H, S, S) maps.

    Only real queries count, and in the Pearson loss each row's rho is taken over its real keys only:
    padded keys hold (near) zero probability on both sides, and left in they would add matching
    entries that raise rho, so the same sentence would score better the more it is padded.
    """
    t, s = align_heads(teacher, student)
    rows_t, rows_s, rows_mask = attention_rows(t), attention_rows(s), row_mask(mask, t.shape[1])
    if kind == "classic":
        # feature_mse averages over keys; Eq. 2 sums them: times S keeps the squared norm (padded keys,
        # zero on both sides, add nothing to it).
        return feature_mse(rows_t, rows_s, rows_mask) * t.shape[-1]
    keys = None if mask is None else mask[:, None, :]  # (B, 1, S): the same real keys for every row
    return pearson_feature_loss(rows_t, rows_s, rows_mask, channel_mask=keys)


def hidden_loss(kind: str, teacher: Tensor, student: Tensor, mask: Tensor | None) -> Tensor:
    """Eq. 3 (classic, relative) or Eq. 5 (pearson) between (B, S, D) block outputs at the teacher's width."""
    if kind == "classic":
        return relative_feature_mse(teacher, student, mask)
    return pearson_feature_loss(teacher, student, mask)


def class_loss(kind: str, teacher_logits: Tensor, student_logits: Tensor, intra_weight: float = 0.0) -> Tensor:
    """Eq. 1 (KL of the softmax outputs) or Eq. 4 (1 - rho per example) plus `intra_weight` times DIST's
    intra-class term (1 - rho per class across the batch; pearson only) on (B, C) logits."""
    check_loss_kind(kind)
    if kind == "classic":
        return logit_kl(teacher_logits, student_logits)
    return relational_class_loss(teacher_logits, student_logits, intra_weight)


def path_losses(kind: str, student: ElmOutput, teacher: TeacherOutput, adapters: Adapters,
                mask: Tensor | None) -> PathLosses:
    """Attention and block-output losses of one sampled path, averaged over its layers."""
    check_loss_kind(kind)
    num_layers = len(student.layers)
    teacher_layers = len(teacher.attentions)
    attn, hidden = [], []
    for i, out in enumerate(student.layers):
        layer = teacher_layer(i + 1, num_layers, teacher_layers)
        attn.append(attention_loss(kind, teacher.attentions[layer - 1], out.attention, mask))
        # hidden_states[0] is the teacher's embedding output, so layer l is at index l.
        hidden.append(hidden_loss(kind, teacher.hidden_states[layer], adapters[i](out.hidden), mask))
    return PathLosses(attention=torch.stack(attn).mean(), hidden=torch.stack(hidden).mean())
