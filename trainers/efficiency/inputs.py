"""Forward inputs for measuring a model: how to call it, where it lives, random token ids."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

#: what a forward takes: keyword tensors, positional tensors, or one tensor.
Inputs = Mapping[str, Any] | tuple[Any, ...] | torch.Tensor

#: builds the forward inputs for (batch, seq_len) on a device.
MakeInputs = Callable[[int, int, torch.device], Inputs]


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """`model(**inputs)` for a mapping, `model(*inputs)` for a tuple, `model(inputs)` otherwise."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def token_inputs(vocab_size: int, seed: int = 0) -> MakeInputs:
    """Random token ids (and an all-ones attention mask) for a model taking `input_ids`."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")

    def make(batch: int, seq_len: int, device: torch.device) -> Inputs:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab_size, (batch, seq_len), generator=generator)  # (batch, seq_len)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}

    return make
