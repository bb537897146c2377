"""The AutoDistill student template (AutoDistill, Zhang et al. 2022, §3.2, Fig. 2).

A chain of identical building blocks between an embedding layer and a task head. Each block, after
MobileBERT (Sun et al. 2020): a linear bottleneck in (hidden -> bottleneck), multi-head attention on
the bottleneck, `num_ffn` stacked feed-forward networks on the bottleneck (two dense layers each),
and a linear bottleneck out (bottleneck -> hidden) with a residual connection around the block.
MobileBERT feeds the values from the wide input; here queries, keys and values all come from the
bottleneck, which is what lets any (hidden, bottleneck, heads) combination be built.

`count_params` in `search_spaces/autodistill.py` counts exactly the parameters created here.

This file needs only torch (and safetensors for `load`): exports ship a copy of it as
`modeling_student.py`, so a distilled student loads where this project is not installed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from search_spaces.autodistill import StudentArch


@dataclass(frozen=True)
class StudentOutput:
    """What distillation and the task heads read from one forward pass."""

    #: (B, S, hidden): the output of the last block run.
    last_hidden_state: Tensor
    #: one (B, S, hidden) tensor per block run, in order.
    hidden_states: tuple[Tensor, ...]
    #: one (B, heads, S, S) attention-probability tensor per block run (rows sum to 1).
    attentions: tuple[Tensor, ...]


class StudentEmbeddings(nn.Module):
    """Word + position + token-type embeddings at the student's hidden size (BERT layout)."""

    def __init__(self, arch: StudentArch, dropout: float) -> None:
        super().__init__()
        self.word = nn.Embedding(arch.vocab_size, arch.hidden_size)
        self.position = nn.Embedding(arch.max_positions, arch.hidden_size)
        self.token_type = nn.Embedding(arch.type_vocab_size, arch.hidden_size)
        self.norm = nn.LayerNorm(arch.hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions)[None] + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class BottleneckAttention(nn.Module):
    """Multi-head self-attention at the bottleneck width, returning its probabilities for distillation."""

    def __init__(self, arch: StudentArch, dropout: float) -> None:
        super().__init__()
        b = arch.bottleneck_size
        self.num_heads = arch.num_heads
        self.query = nn.Linear(b, b)
        self.key = nn.Linear(b, b)
        self.value = nn.Linear(b, b)
        self.output = nn.Linear(b, b)
        self.norm = nn.LayerNorm(b)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask_bias: Tensor) -> tuple[Tensor, Tensor]:
        bsz, seq, width = x.shape
        # (B, S, b) -> (B, heads, S, b / heads)
        split = lambda t: t.view(bsz, seq, self.num_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask_bias  # (B, heads, S, S)
        probs = scores.softmax(dim=-1)
        context = (self.dropout(probs) @ v).transpose(1, 2).reshape(bsz, seq, width)  # (B, S, b)
        return self.norm(x + self.dropout(self.output(context))), probs


class FeedForward(nn.Module):
    """One of the stacked FFNs: two dense layers with a residual connection and a norm."""

    def __init__(self, arch: StudentArch, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(arch.bottleneck_size, arch.intermediate_size)
        self.outer = nn.Linear(arch.intermediate_size, arch.bottleneck_size)
        self.norm = nn.LayerNorm(arch.bottleneck_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.outer(F.gelu(self.inner(x)))))


class StudentBlock(nn.Module):
    """Bottleneck in -> attention -> stacked FFNs -> bottleneck out, with a residual at the hidden size."""

    def __init__(self, arch: StudentArch, dropout: float) -> None:
        super().__init__()
        self.bottleneck_in = nn.Linear(arch.hidden_size, arch.bottleneck_size)
        self.in_norm = nn.LayerNorm(arch.bottleneck_size)
        self.attention = BottleneckAttention(arch, dropout)
        self.ffns = nn.ModuleList(FeedForward(arch, dropout) for _ in range(arch.num_ffn))
        self.bottleneck_out = nn.Linear(arch.bottleneck_size, arch.hidden_size)
        self.out_norm = nn.LayerNorm(arch.hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask_bias: Tensor) -> tuple[Tensor, Tensor]:
        u, probs = self.attention(self.in_norm(self.bottleneck_in(x)), mask_bias)  # (B, S, b)
        for ffn in self.ffns:
            u = ffn(u)
        return self.out_norm(x + self.dropout(self.bottleneck_out(u))), probs  # (B, S, hidden)


class Student(nn.Module):
    """The student encoder: embeddings and `num_blocks` building blocks (no task head)."""

    def __init__(self, arch: StudentArch, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.embeddings = StudentEmbeddings(arch, dropout)
        self.blocks = nn.ModuleList(StudentBlock(arch, dropout) for _ in range(arch.num_blocks))
        self.apply(init_weights)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        num_blocks: int | None = None,
    ) -> StudentOutput:
        """Run the embeddings and the first `num_blocks` blocks (all by default).

        Progressive distillation of block k needs only blocks 1..k, so later blocks are skipped.
        """
        depth = len(self.blocks) if num_blocks is None else num_blocks
        if not 1 <= depth <= len(self.blocks):
            raise ValueError(f"num_blocks must be in 1..{len(self.blocks)}, got {num_blocks}")
        if input_ids.shape[1] > self.arch.max_positions:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_positions={self.arch.max_positions}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        mask_bias = padding_bias(attention_mask, x.dtype)
        hidden, attentions = [], []
        for block in self.blocks[:depth]:
            x, probs = block(x, mask_bias)
            hidden.append(x)
            attentions.append(probs)
        return StudentOutput(last_hidden_state=x, hidden_states=tuple(hidden), attentions=tuple(attentions))


class MaskedTokenHead(nn.Module):
    """Masked-token reconstruction head with the decoder tied to the student's word embeddings."""

    def __init__(self, arch: StudentArch) -> None:
        super().__init__()
        self.transform = nn.Linear(arch.hidden_size, arch.hidden_size)
        self.norm = nn.LayerNorm(arch.hidden_size)
        self.bias = nn.Parameter(torch.zeros(arch.vocab_size))
        init_weights(self.transform)

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """(B, S, hidden) and the student's (vocab, hidden) word embeddings -> (B, S, vocab) logits.

        The decoder weight is passed in rather than held, so it stays the student's own parameter.
        """
        return F.linear(self.norm(F.gelu(self.transform(hidden))), word_embeddings, self.bias)


class StudentClassifier(nn.Module):
    """The student with a sequence-classification head for fine-tuning.

    Pools by the mean over real tokens: the shipped teachers are sentence encoders trained with
    mean pooling, so that is the representation the distilled student learns to reproduce.
    """

    def __init__(self, student: Student, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.student = student
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(student.arch.hidden_size, num_labels)
        init_weights(self.head)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """(B, S) token ids -> (B, num_labels) logits."""
        hidden = self.student(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, S, h)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, S, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, h)
        return self.head(self.dropout(pooled))


def padding_bias(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, S) 1/0 mask -> (B, 1, 1, S) additive bias that removes padded keys from the softmax."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def init_weights(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


#: files of an exported student (`trainers/autodistill/export.py` writes them).
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def load(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """An exported student in eval mode: a `StudentClassifier` when the export has a task head
    (`num_labels` in its config), else the bare `Student` encoder. Needs torch and safetensors only."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    # Student reads its shape as attributes; a namespace keeps this file free of the project's types.
    student = Student(SimpleNamespace(**config["arch"]))  # type: ignore[arg-type]
    model: nn.Module = StudentClassifier(student, config["num_labels"]) if config.get("num_labels") else student
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
    return model.to(device).eval()
