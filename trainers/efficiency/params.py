"""Parameter counts of any `nn.Module`: total, embedding and non-embedding, trainable and all.

Definition (the one every search space's analytic count must match): the **embedding** parameters
are those owned by `nn.Embedding` modules — for BERT the word, position and token-type tables.
**Non-embedding** is everything else, including the embedding LayerNorm, the pooler and the
classifier. This follows the structural-pruning paper (structural-pruning-via-nas.txt, §4.2), which
normalises parameter counts by what pruning can remove: the embedding tables cannot shrink without
changing the embedding dimension. Buffers (e.g. BERT's `position_ids`) are not parameters and are not
counted. A parameter shared between modules (tied weights) is counted once, as an embedding when any
`nn.Embedding` owns it.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of one module; `trainable_*` count only parameters with `requires_grad`."""

    total: int
    embedding: int
    trainable: int
    trainable_embedding: int

    def __post_init__(self) -> None:
        if not 0 <= self.embedding <= self.total:
            raise ValueError(f"embedding must be in 0..total={self.total}, got {self.embedding}")
        if not 0 <= self.trainable <= self.total:
            raise ValueError(f"trainable must be in 0..total={self.total}, got {self.trainable}")
        if not 0 <= self.trainable_embedding <= min(self.embedding, self.trainable):
            raise ValueError(
                f"trainable_embedding must be in 0..min(embedding, trainable)="
                f"{min(self.embedding, self.trainable)}, got {self.trainable_embedding}"
            )

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding

    @property
    def trainable_non_embedding(self) -> int:
        return self.trainable - self.trainable_embedding

    def as_metrics(self) -> dict[str, float]:
        """The metric names trainers report and search spaces compute analytically."""
        return {"params": float(self.total), "params_non_embedding": float(self.non_embedding)}


def count_params(module: nn.Module) -> ParamCount:
    """Count the parameters of `module` (tied parameters once; see the module docstring)."""
    embedding_ids = {
        id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)
    }
    total = embedding = trainable = trainable_embedding = 0
    # `parameters()` already yields each shared tensor once.
    for p in module.parameters():
        n = p.numel()
        is_embedding = id(p) in embedding_ids
        total += n
        embedding += n if is_embedding else 0
        if p.requires_grad:
            trainable += n
            trainable_embedding += n if is_embedding else 0
    return ParamCount(total=total, embedding=embedding, trainable=trainable, trainable_embedding=trainable_embedding)
