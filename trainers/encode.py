"""Token tensors and DataLoaders for a `trainers.data.Task`.

Classification texts are truncated and padded to a fixed `max_length`. Language-modelling text is
read as one stream, cut into blocks of `max_length` tokens (special tokens included) so no padding
is wasted. `max_examples` caps each split with a subsample that a seed fixes on every machine
(quickstarts and tests use it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from trainers.data import Task
from trainers.data_named import SPLITS, unit_interval

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: lines tokenised per call when building language-model blocks.
LINES_PER_BATCH = 256


@dataclass(frozen=True)
class Encoded(Dataset):
    """One split as tensors; items are dicts a Hugging Face model takes as keyword arguments."""

    input_ids: torch.Tensor  # [N, L] int64
    attention_mask: torch.Tensor  # [N, L] int64
    labels: torch.Tensor | None = None  # [N] int64, classification only

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.input_ids.shape != self.attention_mask.shape:
            raise ValueError(f"input_ids {tuple(self.input_ids.shape)} and attention_mask "
                             f"{tuple(self.attention_mask.shape)} must be the same [N, L]")
        if self.labels is not None and self.labels.shape != self.input_ids.shape[:1]:
            raise ValueError(f"labels {tuple(self.labels.shape)} must be [N] with N = {self.input_ids.shape[0]}")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item

    def loader(self, batch_size: int = 32, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """Batches of dicts; with `shuffle` the order is fixed by `seed`."""
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=generator)


def encode(task: Task, tokenizer: PreTrainedTokenizerBase, *, max_length: int = 128, max_examples: int | None = None,
           seed: int = 0, splits: Sequence[str] = SPLITS) -> dict[str, Encoded]:
    """Each requested split as tensors of width `max_length`, at most `max_examples` rows each."""
    if max_length < 8:
        raise ValueError(f"max_length must be >= 8, got {max_length}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be >= 1 or None, got {max_examples}")
    out = {}
    for split in splits:
        ds = task.splits[split]
        if task.kind == "classification":
            keep = subsample(len(ds), max_examples, seed)
            ds = ds.select(keep)
            out[split] = encode_texts(ds["text"], ds["label"], tokenizer, max_length)
        else:
            out[split] = lm_blocks(ds["text"], tokenizer, max_length, max_examples, seed)
    return out


def loaders(task: Task, tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 32, max_length: int = 128,
            max_examples: int | None = None, seed: int = 0) -> dict[str, DataLoader]:
    """DataLoaders for train (shuffled by `seed`), validation and test."""
    encoded = encode(task, tokenizer, max_length=max_length, max_examples=max_examples, seed=seed)
    return {split: e.loader(batch_size, shuffle=split == "train", seed=seed) for split, e in encoded.items()}


def subsample(n: int, max_examples: int | None, seed: int) -> list[int]:
    """Row indices, in their original order, of a seeded subsample of at most `max_examples` of `n` rows."""
    if max_examples is None or max_examples >= n:
        return list(range(n))
    # Ranking rows by a hash keeps the subsample the same on every machine and library version.
    ranked = sorted(range(n), key=lambda i: unit_interval(str(i), seed))
    return sorted(ranked[:max_examples])


def encode_texts(texts: list[str], labels: list[int], tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoded:
    batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    return Encoded(batch["input_ids"].long(), batch["attention_mask"].long(), torch.tensor(labels, dtype=torch.long))


def lm_blocks(texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int, max_examples: int | None,
              seed: int) -> Encoded:
    """Blocks of `max_length` tokens from the text stream, each wrapped in the tokenizer's special tokens.

    With `max_examples`, reading starts at a line picked by `seed` (wrapping around) and stops as soon
    as enough blocks are full, so a small subsample never tokenises the whole corpus.
    """
    prefix, suffix = special_tokens(tokenizer)
    body = max_length - len(prefix) - len(suffix)
    wanted = max_examples * body if max_examples is not None else None
    stream: list[int] = []
    for ids in token_batches(texts, tokenizer, start_line(len(texts), max_examples, seed)):
        stream.extend(ids)
        if wanted is not None and len(stream) >= wanted:
            break
    count = len(stream) // body if wanted is None else min(len(stream) // body, max_examples or 0)
    if count == 0:
        raise ValueError(f"the text has {len(stream)} tokens, fewer than one block of {body}")
    blocks = [prefix + stream[i * body:(i + 1) * body] + suffix for i in range(count)]
    input_ids = torch.tensor(blocks, dtype=torch.long)  # [count, max_length]
    return Encoded(input_ids, torch.ones_like(input_ids))


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence ([CLS] / [SEP] for BERT, none for GPT-2)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    at = next(i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare)
    return full[:at], full[at + len(bare):]


def start_line(n: int, max_examples: int | None, seed: int) -> int:
    return 0 if max_examples is None else int(unit_interval("start", seed) * n)


def token_batches(texts: list[str], tokenizer: PreTrainedTokenizerBase, start: int) -> Iterator[list[int]]:
    order = list(texts[start:]) + list(texts[:start])
    for i in range(0, len(order), LINES_PER_BATCH):
        encoded = tokenizer(order[i:i + LINES_PER_BATCH], add_special_tokens=False, verbose=False)["input_ids"]
        yield [token for line in encoded for token in line]
