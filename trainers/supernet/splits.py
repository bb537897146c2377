"""Tokenised splits of a classification task for the super-network stage and its trainers.

Each worker process keeps the splits it has built (keyed by everything that decides them), so the
trials a worker runs one after another tokenise the validation data once.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainers.data import load_task
from trainers.encode import Encoded, encode
from trainers.contract import TrainerError


@dataclass(frozen=True)
class SplitSpec:
    """What decides a tokenised split: the data source, the tokenizer's model, the sizes, the seed."""

    task: str
    model: str
    split: str
    max_examples: int | None
    max_length: int
    seed: int


#: (Encoded split, number of labels) per SplitSpec, for this process.
_SPLITS: dict[SplitSpec, tuple[Encoded, int]] = {}


def classification_split(spec: SplitSpec) -> tuple[Encoded, int]:
    """The split as tensors, and the task's number of labels (cached per process)."""
    if spec not in _SPLITS:
        task, tokenizer = load_task(spec.task, spec.model, seed=spec.seed)
        if task.kind != "classification":
            raise TrainerError(f"option 'task' must be a classification task, {spec.task!r} is {task.kind}")
        encoded = encode(task, tokenizer, max_length=spec.max_length, max_examples=spec.max_examples,
                         seed=spec.seed, splits=(spec.split,))[spec.split]
        if len(encoded) == 0:
            raise TrainerError(f"task {spec.task!r} has no {spec.split} examples")
        _SPLITS[spec] = (encoded, task.num_labels)
    return _SPLITS[spec]
