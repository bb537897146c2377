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

from torch import Tensor, nn

from search_spaces.autodistill import StudentArch
from trainers.autodistill.student import MaskedTokenHead, StudentOutput, init_weights
from trainers.distill.losses import align_heads, attention_kl, feature_mse
from trainers.distill.teacher import TeacherOutput


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
    """A dense layer student_width -> teacher_width, or the identity when the widths agree."""
    if student_width == teacher_width:
        return nn.Identity()
    adapter = nn.Linear(student_width, teacher_width)
    init_weights(adapter)
    return adapter


@dataclass(frozen=True)
class LayerLosses:
    attention_kl: Tensor
    feature_mse: Tensor

    @property
    def total(self) -> Tensor:
        return self.attention_kl + self.feature_mse


def layer_losses(student: StudentOutput, teacher: TeacherOutput, block: int, layer: int,
                 adapter: nn.Module, mask: Tensor) -> LayerLosses:
    """Eq. 1 and Eq. 2 between 1-based student `block` and 1-based teacher `layer`."""
    t_attn, s_attn = align_heads(teacher.attentions[layer - 1], student.attentions[block - 1])
    # hidden_states[0] is the teacher's embedding output, so layer l is at index l.
    return LayerLosses(
        attention_kl=attention_kl(t_attn, s_attn, mask),
        feature_mse=feature_mse(teacher.hidden_states[layer], adapter(student.hidden_states[block - 1]), mask),
    )
