"""Layer-wise knowledge transfer between a student and a teacher of different shapes
(AutoDistill, Zhang et al. 2022, §3.3.1-3.3.2).

Student blocks are mapped evenly onto teacher layers (the last block to the last layer). Where the
student's hidden size differs from the teacher's, a dense adapter lifts the student's block output
to the teacher's width before the feature-map loss (§3.3.2; FitNets' regressor, Romero et al. 2014).
Attention maps are compared head by head after `align_heads` brings both to a common head count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from search_spaces.autodistill import StudentArch
from trainers.autodistill.embedding_init import resample_features
from trainers.autodistill.student import MaskedTokenHead, StudentOutput
from trainers.distill.losses import align_heads, attention_kl, relative_feature_mse


def teacher_layer(block: int, num_blocks: int, teacher_layers: int) -> int:
    """The 1-based teacher layer distilled into 1-based student `block`: ceil(block * L / K)."""
    if not 1 <= block <= num_blocks:
        raise ValueError(f"block must be in 1..{num_blocks}, got {block}")
    return math.ceil(block * teacher_layers / num_blocks)


class DistillHeads(nn.Module):
    """Modules that exist only while distilling: one adapter per block and the masked-token head."""

    def __init__(self, arch: StudentArch, teacher_hidden: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(make_adapter(arch.hidden_size, teacher_hidden) for _ in range(arch.num_blocks))
        self.mlm = MaskedTokenHead(arch)


def make_adapter(student_width: int, teacher_width: int) -> nn.Module:
    """A dense layer student_width -> teacher_width, or the identity when the widths agree.

    It starts as the feature resize from the student's width to the teacher's (the inverse of the
    resize that made the student's embeddings); `fit_adapter` then fits it to data.
    """
    if student_width == teacher_width:
        return nn.Identity()
    adapter = nn.Linear(student_width, teacher_width)
    with torch.no_grad():
        # Row i of the resized identity is the image of feature i: (student_width, teacher_width).
        adapter.weight.copy_(resample_features(torch.eye(student_width), teacher_width).T)
        adapter.bias.zero_()
    return adapter


@torch.no_grad()
def fit_adapter(adapter: nn.Module, student_features: Tensor, teacher_features: Tensor, ridge: float = 1e-3) -> None:
    """Set a dense adapter to the ridge least-squares map from (B, S, h) student to (B, S, D) teacher features.

    A stage of a few dozen steps cannot both learn this map and train the block; starting from the
    best linear read-out of the current block makes the stage's loss measure what the block learns
    (and copes with teacher layers of any scale: MiniLM-L6's last layer is 4x smaller than the rest).
    """
    if not isinstance(adapter, nn.Linear):
        return
    x = student_features.reshape(-1, student_features.shape[-1]).double()  # (B*S, h)
    x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)  # (B*S, h + 1): bias
    y = teacher_features.reshape(-1, teacher_features.shape[-1]).double()  # (B*S, D)
    gram = x.T @ x
    gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=x.dtype, device=x.device)
    solution = torch.linalg.solve(gram, x.T @ y)  # (h + 1, D)
    adapter.weight.copy_(solution[:-1].T)
    adapter.bias.copy_(solution[-1])


@dataclass(frozen=True)
class LayerLosses:
    attention_kl: Tensor
    feature_loss: Tensor

    @property
    def total(self) -> Tensor:
        return self.attention_kl + self.feature_loss


def layer_losses(student: StudentOutput, teacher_hidden: Tensor, teacher_attention: Tensor, block: int,
                 adapter: nn.Module, mask: Tensor) -> LayerLosses:
    """Eq. 1 and Eq. 2 (relative to the teacher layer's scale) between 1-based student `block` and the
    teacher layer it is mapped to: its (B, S, D) output and (B, H, S, S) attention probabilities."""
    t_attn, s_attn = align_heads(teacher_attention, student.attentions[block - 1])
    return LayerLosses(
        attention_kl=attention_kl(t_attn, s_attn, mask),
        feature_loss=relative_feature_mse(teacher_hidden, adapter(student.hidden_states[block - 1]), mask),
    )
