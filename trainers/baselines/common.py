"""What the pruning baselines share: their data, evaluation on the sliced super-network, and the
table they return.

Klein et al. (structural-pruning-via-nas.txt, §4.2) compare weight-sharing NAS with layer dropping,
head pruning and retraining-free pruning on the same data; every baseline here takes the same
`BaselineData` and fine-tuning settings and returns the same table: one row per pruned model with
its parameter counts (exact, from `count_params`) and validation accuracy. Which rows are on the
(params, accuracy) front is the caller's to mark, with the orchestrator's dominance
(`benchmarks/pruning_baselines.py`): trainers know nothing of the orchestrator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from search_spaces.sub_network import EncoderShape, SubNetwork, count_params
from trainers.autodistill.finetune import accuracy
from trainers.encode import Encoded
from trainers.supernet import SuperNetwork
from trainers.precision import MixedPrecision
from trainers.supernet.fit import cross_entropy_step, fit
from trainers.supernet.options import FinetuneOptions

#: the columns of every baseline's table, in order.
COLUMNS = ("method", "params", "params_non_embedding", "accuracy", "config", "sub_network")


@dataclass(frozen=True)
class BaselineData:
    """Labelled splits: `train` fine-tunes and calibrates (importance, Fisher), `validation` scores."""

    train: Encoded
    validation: Encoded

    def __post_init__(self) -> None:
        for name in ("train", "validation"):
            split = getattr(self, name)
            if not isinstance(split, Encoded) or split.labels is None or len(split) == 0:
                raise ValueError(f"{name} must be a non-empty labelled Encoded split (trainers.encode.encode)")


def fine_tune(model: nn.Module, train: Encoded, options: FinetuneOptions, seed: int = 0) -> list[dict[str, float]]:
    """Cross-entropy fine-tuning with the super-network stage's loop (AdamW, linear decay, clipping)
    for `options.epochs` epochs on the device `model` is on, in `options.precision`; returns the loss
    trace, leaves eval mode."""
    device = next(model.parameters()).device
    amp = MixedPrecision(options.precision, device)
    torch.manual_seed(seed)  # dropout
    model.train()
    trace = fit(model.parameters(), train.loader(options.batch_size, shuffle=True, seed=seed), options, device,
                cross_entropy_step(model, amp), amp=amp)
    model.eval()
    return trace


def calibration_rows(split: Encoded, examples: int | None) -> Encoded:
    """The first `examples` rows of `split` (all of them for None)."""
    if examples is None or examples >= len(split):
        return split
    assert split.labels is not None
    return Encoded(split.input_ids[:examples], split.attention_mask[:examples], split.labels[:examples])


def batches(split: Encoded, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(input_ids, attention_mask, labels) batches of `split`, in order."""
    assert split.labels is not None
    return [(split.input_ids[i:i + batch_size], split.attention_mask[i:i + batch_size], split.labels[i:i + batch_size])
            for i in range(0, len(split), batch_size)]


def sub_network_of(head_keep: torch.Tensor, unit_keep: torch.Tensor) -> SubNetwork:
    """The sub-network keeping the True entries of (L, H) `head_keep` and (L, I) `unit_keep`."""
    heads = tuple(tuple(int(i) for i in torch.nonzero(row).flatten()) for row in head_keep.bool())
    units = tuple(tuple(int(i) for i in torch.nonzero(row).flatten()) for row in unit_keep.bool())
    return SubNetwork(heads, units)


def score(model: SuperNetwork, sub: SubNetwork, validation: Encoded, batch_size: int) -> dict[str, Any]:
    """Validation accuracy of `sub` on the (sliced) super-network and its exact parameter counts;
    the super-network is reset afterwards."""
    model.set_sub_network(sub)
    try:
        acc = accuracy(model, validation, batch_size)
    finally:
        model.reset_super_network()
    return {"accuracy": acc, "sub_network": sub, **count_params(model.shape, sub)}


def point(shape: EncoderShape, sub: SubNetwork, acc: float) -> dict[str, Any]:
    """A row for a model scored elsewhere (e.g. an extracted, fine-tuned one)."""
    return {"accuracy": acc, "sub_network": sub, **count_params(shape, sub)}


def baseline_table(method: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The baseline's table (see COLUMNS), smallest model first."""
    frame = pd.DataFrame([{**row, "method": method} for row in rows], columns=list(COLUMNS))
    return frame.sort_values("params", ignore_index=True)
