"""Options shared by the super-network stage and the trainers built on it (frozen dataclasses)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainers.options import LatencyMeasureOptions, PrecisionOptions


@dataclass(frozen=True)
class FinetuneOptions(PrecisionOptions):
    """A fine-tuning run: which model on which task, and how (AdamW with linear decay), in which
    precision (inherited)."""

    #: a model asset (`minilm-l6`) or a local Hugging Face BERT folder.
    model: str = "minilm-l6"
    #: a classification data source for `trainers.data.load_data`.
    task: str = "movie-reviews"
    epochs: int = 1
    lr: float = 2e-5
    #: learning rate of the classification head (pooler and classifier; null: `lr`). The classifier
    #: is new: at a pre-trained body's rate it barely moves in a short run.
    head_lr: float | None = None
    #: fraction of the steps over which the learning rates rise linearly from 0 (then they decay to 0).
    warmup: float = 0.0
    batch_size: int = 16
    weight_decay: float = 0.01
    #: training examples (a seeded subsample; null: all) and tokens per example.
    max_examples: int | None = None
    max_length: int = 128
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"option {name!r} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"option 'lr' must be > 0, got {self.lr}")
        if self.head_lr is not None and self.head_lr <= 0:
            raise ValueError(f"option 'head_lr' must be > 0 or null (the same as 'lr'), got {self.head_lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"option 'warmup' must be a fraction in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise ValueError(f"option 'weight_decay' must be >= 0, got {self.weight_decay}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"option 'max_examples' must be >= 1 or null (all), got {self.max_examples}")
        if self.max_length < 8:
            raise ValueError(f"option 'max_length' must be >= 8, got {self.max_length}")


@dataclass(frozen=True)
class MeasureOptions(LatencyMeasureOptions):
    """How a sub-network is scored: validation subsample, and latency on this worker's device (inherited)."""

    #: validation examples (a seeded subsample; null: all).
    eval_examples: int | None = None
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.eval_examples is not None and self.eval_examples < 1:
            raise ValueError(f"option 'eval_examples' must be >= 1 or null (all), got {self.eval_examples}")
        if self.eval_batch_size < 1:
            raise ValueError(f"option 'eval_batch_size' must be >= 1, got {self.eval_batch_size}")
        LatencyMeasureOptions.__post_init__(self)
