"""A short supervised fine-tune and its accuracy: the downstream-quality probe of a distilled student.

AutoDistill ranks students by pre-training accuracy and confirms on GLUE after regular distillation
(autodistill.txt §4.1, §4.4); at search time a few hundred fine-tuning steps on a shipped task give a
cheap estimate of the downstream quality that ranking is meant to predict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainers.autodistill.student import Student, StudentClassifier
from trainers.data import load_data
from trainers.encode import Encoded, encode
from trainers.contract import TrainerError
from trainers.options import PrecisionOptions
from trainers.precision import MixedPrecision, autocast, to_device


@dataclass(frozen=True)
class FinetuneConfig(PrecisionOptions):
    """A fine-tune's steps and optimiser, and its precision (inherited; the accuracy is scored in it too)."""

    steps: int = 100
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        PrecisionOptions.__post_init__(self)
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"option 'finetune_{name}' must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"option 'finetune_lr' must be > 0, got {self.lr}")


def finetune(model: nn.Module, train: Encoded, config: FinetuneConfig, seed: int = 0) -> float:
    """Train `model` ((B, S) ids, (B, S) mask -> (B, C) logits) for `config.steps`; returns the last loss."""
    if train.labels is None:
        raise ValueError("fine-tuning needs a labelled split")
    device = next(model.parameters()).device
    amp = MixedPrecision(config.precision, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(config.steps):
        rows = torch.randint(len(train), (min(config.batch_size, len(train)),), generator=generator)
        with amp.autocast():
            logits = model(to_device(train.input_ids[rows], device), to_device(train.attention_mask[rows], device))  # (B, C)
            loss = F.cross_entropy(logits, to_device(train.labels[rows], device))
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizer, model.parameters(), max_norm=None)
    return loss.item()


@torch.no_grad()
def accuracy(model: nn.Module, split: Encoded, batch_size: int = 64, precision: str = "fp32") -> float:
    """Fraction of `split` the model labels correctly, its forwards in `precision` (eval mode; the
    mode is restored)."""
    if split.labels is None:
        raise ValueError("accuracy needs a labelled split")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        end = start + batch_size
        with autocast(precision, device):
            logits = model(to_device(split.input_ids[start:end], device), to_device(split.attention_mask[start:end], device))
        correct += int((logits.argmax(-1).cpu() == split.labels[start:end]).sum())
    model.train(was_training)
    return correct / len(split)


@dataclass(frozen=True)
class TaskRun:
    classifier: StudentClassifier
    accuracy: float
    label_names: tuple[str, ...]


def finetune_on_task(student: Student, tokenizer: object, task_source: str, config: FinetuneConfig, *,
                     max_length: int, train_examples: int, eval_examples: int, seed: int,
                     eval_split: Literal["validation", "test"] = "validation") -> TaskRun:
    """Fine-tune `student` (in place) with a new head on a classification task and score it on `eval_split`."""
    task = load_data(task_source, seed=seed)
    if task.kind != "classification":
        raise TrainerError(f"task {task_source!r} must be a classification task, it is {task.kind}")
    train = encode(task, tokenizer, max_length=max_length, max_examples=train_examples,  # type: ignore[arg-type]
                   seed=seed, splits=("train",))["train"]
    held_out = encode(task, tokenizer, max_length=max_length, max_examples=eval_examples,  # type: ignore[arg-type]
                      seed=seed, splits=(eval_split,))[eval_split]
    device = student.embeddings.word.weight.device
    classifier = StudentClassifier(student, task.num_labels).to(device)
    finetune(classifier, train, config, seed=seed)
    return TaskRun(classifier, accuracy(classifier, held_out, precision=config.precision), tuple(task.label_names))
