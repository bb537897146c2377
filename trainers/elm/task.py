"""Downstream-task pieces of ELM Algorithm 2 (steps 2 and the final fine-tune): task data, the
student's classification head, and the teacher's.

The teacher is a sentence encoder without a classifier (the shipped MiniLM-L6 has none). It gets one
as a linear probe: a softmax regression on its frozen mean-pooled last layer, fitted once per
(teacher, task, data) and cached (`teacher_head`). Its encoder is left untouched, so the attention
maps and hidden states the super-network was pre-trained to match stay the targets during the task
fine-tune, and only the class outputs (Eq. 1 / Eq. 4) are new. A fine-tuned teacher would be a
stronger classifier but costs a full fine-tune of the teacher on CPU; the probe costs one teacher pass
over the training sentences.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from search_spaces.elm import ElmArch
from trainers.data import load_data
from trainers.distill.teacher import Teacher, TeacherOutput
from trainers.elm.supernet import ElmModel, ElmOutput, ElmSuperNet
from trainers.encode import Encoded, encode
from trainers.report import TrainerError

#: bumped when what a cached teacher head means changes.
HEAD_FORMAT = 1


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, S, D) states, (B, S) mask -> (B, D) mean over real tokens (the teachers' own pooling)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, S, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


@dataclass(frozen=True)
class TaskData:
    name: str
    label_names: tuple[str, ...]
    train: Encoded
    validation: Encoded
    test: Encoded

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def task_data(source: str, tokenizer: Any, max_length: int, train_examples: int | None, eval_examples: int | None,
              seed: int) -> TaskData:
    """A classification task's splits as tensors (seeded subsamples of the given sizes)."""
    task = load_data(source, seed=seed)
    if task.kind != "classification":
        raise TrainerError(f"task {source!r} must be a classification task, it is {task.kind}")
    train = encode(task, tokenizer, max_length=max_length, max_examples=train_examples, seed=seed, splits=("train",))
    held = encode(task, tokenizer, max_length=max_length, max_examples=eval_examples, seed=seed,
                  splits=("validation", "test"))
    return TaskData(source, tuple(task.label_names), train["train"], held["validation"], held["test"])


class ElmClassifier(nn.Module):
    """An ELM encoder (the super-network, or one extracted path) with a mean-pooling linear head.

    On the super-network every path shares the head, as every path shares the embeddings."""

    def __init__(self, encoder: ElmSuperNet | ElmModel, num_labels: int, head: nn.Linear | None = None) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.encoder = encoder
        hidden = encoder.shape.hidden_size if isinstance(encoder, ElmSuperNet) else encoder.arch.shape.hidden_size
        self.head = head if head is not None else nn.Linear(hidden, num_labels)
        if head is None:
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def run(self, input_ids: Tensor, attention_mask: Tensor, arch: ElmArch | None = None) -> tuple[Tensor, ElmOutput]:
        """(B, S) ids -> ((B, num_labels) logits, the encoder's layer outputs); `arch` picks the path on a
        super-network (default: its active one)."""
        if isinstance(self.encoder, ElmSuperNet):
            out = self.encoder(input_ids, attention_mask, arch=arch)
        else:
            out = self.encoder(input_ids, attention_mask)
        return self.head(mean_pool(out.last_hidden_state, attention_mask)), out

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.run(input_ids, attention_mask)[0]


class TaskTeacher:
    """The frozen teacher encoder and its linear probe: layer targets and class outputs in one pass."""

    def __init__(self, teacher: Teacher, head: nn.Linear) -> None:
        self.teacher = teacher
        self.head = head.to(teacher.device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[TeacherOutput, Tensor]:
        out = self.teacher(input_ids, attention_mask)
        return out, self.head(mean_pool(out.hidden_states[-1], attention_mask))  # (B, C) logits


@torch.no_grad()
def pooled_features(teacher: Teacher, split: Encoded, batch_size: int = 64) -> Tensor:
    """(N, D) mean-pooled last-layer states of the teacher for every row of `split`."""
    parts = []
    for start in range(0, len(split), batch_size):
        ids = split.input_ids[start:start + batch_size].to(teacher.device)
        mask = split.attention_mask[start:start + batch_size].to(teacher.device)
        parts.append(mean_pool(teacher(ids, mask).hidden_states[-1], mask).cpu())
    return torch.cat(parts)


def fit_probe(features: Tensor, labels: Tensor, num_labels: int, steps: int = 300, lr: float = 0.05,
              weight_decay: float = 1e-3, seed: int = 0) -> nn.Linear:
    """Softmax regression on standardised (N, D) features, folded back into one Linear on the raw ones."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    x = (features - mean) / std  # (N, D)
    head = nn.Linear(features.shape[1], num_labels)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(head(x), labels).backward()
            optimizer.step()
    folded = nn.Linear(features.shape[1], num_labels)
    with torch.no_grad():
        folded.weight.copy_(head.weight / std)  # W (x - m) / s + b = (W / s) x + (b - (W / s) m)
        folded.bias.copy_(head.bias - (head.weight / std) @ mean)
    return folded


def teacher_head(teacher: Teacher, teacher_name: str, data: TaskData, cache_dir: Path, seed: int,
                 steps: int = 300) -> nn.Linear:
    """The teacher's linear probe for `data`, fitted on its training split once and cached in `cache_dir`."""
    key_fields = {"format": HEAD_FORMAT, "teacher": teacher_name, "task": data.name, "seed": seed, "steps": steps,
                  "train_rows": len(data.train), "width": data.train.input_ids.shape[1],
                  "ids": hashlib.sha1(data.train.input_ids.numpy().tobytes()).hexdigest()}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir / f"{key}.safetensors"
    head = nn.Linear(teacher.hidden_size, data.num_labels)
    if path.is_file():
        head.load_state_dict(load_file(str(path)))
        return head
    assert data.train.labels is not None
    head = fit_probe(pooled_features(teacher, data.train), data.train.labels, data.num_labels, steps=steps, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return head


@torch.no_grad()
def accuracy(classify: Any, split: Encoded, device: torch.device, batch_size: int = 64) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `classify((B, S) ids, (B, S) mask) -> (B, C) logits` on `split`."""
    assert split.labels is not None
    correct, loss = 0, 0.0
    for start in range(0, len(split), batch_size):
        ids = split.input_ids[start:start + batch_size].to(device)
        mask = split.attention_mask[start:start + batch_size].to(device)
        labels = split.labels[start:start + batch_size].to(device)
        logits = classify(ids, mask)
        correct += int((logits.argmax(-1) == labels).sum())
        loss += float(F.cross_entropy(logits, labels, reduction="sum"))
    return correct / len(split), loss / len(split)
