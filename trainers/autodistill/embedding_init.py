"""Initialising the student's embeddings from the teacher's (AutoDistill, Zhang et al. 2022, §3.3.2).

The student copies the teacher's embedding layer, but its hidden size is free, so the tables are
down- or up-sampled along the feature axis to the student's width: down-sampling averages adjacent
features (an anti-aliased resize: with an integer ratio every student feature is the mean of a
contiguous group of teacher features), up-sampling interpolates linearly between neighbouring
features (the end features are kept exactly). The same resize is applied to every table and to the
embedding LayerNorm, so a student as wide as the teacher gets an exact copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from search_spaces.base import InvalidArchitectureError
from trainers.autodistill.student import Student
from trainers.distill.teacher import EmbeddingTables


def resample_features(weight: Tensor, size: int) -> Tensor:
    """(N, D) -> (N, size): each row resized along its feature axis."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (rows, features), got shape {tuple(weight.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    rows = weight.detach().float()[:, None, :]  # (N, 1, D): one channel per row for the 1-D resizers
    if size == weight.shape[1]:
        out = rows
    elif size < weight.shape[1]:
        out = F.adaptive_avg_pool1d(rows, size)
    else:
        out = F.interpolate(rows, size=size, mode="linear", align_corners=True)
    return out[:, 0, :].to(weight.dtype)  # (N, size)


@torch.no_grad()
def init_embeddings_from_teacher(student: Student, tables: EmbeddingTables) -> None:
    """Overwrite the student's embedding tables and norm with the resampled teacher ones."""
    arch = student.arch
    if tables.word.shape[0] != arch.vocab_size:
        raise InvalidArchitectureError(
            f"vocab_size={arch.vocab_size} must equal the teacher's vocabulary ({tables.word.shape[0]}): "
            "the student shares the teacher's tokenizer"
        )
    if tables.position is not None and tables.position.shape[0] < arch.max_positions:
        raise InvalidArchitectureError(
            f"max_positions={arch.max_positions} exceeds the teacher's {tables.position.shape[0]} position embeddings"
        )
    emb = student.embeddings
    h = arch.hidden_size
    emb.word.weight.copy_(resample_features(tables.word, h))
    if tables.position is not None:
        emb.position.weight.copy_(resample_features(tables.position[: arch.max_positions], h))
    if tables.token_type is not None:
        # A teacher with fewer token types leaves the student's extra rows as initialised.
        rows = min(arch.type_vocab_size, tables.token_type.shape[0])
        emb.token_type.weight[:rows].copy_(resample_features(tables.token_type[:rows], h))
    else:
        # A teacher without token types (MPNet) adds nothing for them; neither should the student.
        emb.token_type.weight.zero_()
    emb.norm.weight.copy_(resample_features(tables.norm_weight[None], h)[0])
    emb.norm.bias.copy_(resample_features(tables.norm_bias[None], h)[0])
