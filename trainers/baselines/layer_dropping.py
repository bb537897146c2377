"""Layer dropping: remove the top layers of the pre-trained model, then fine-tune what is left.

Sajjad et al., "On the Effect of Dropping Layers of Pre-trained Transformer Models" (Computer
Speech & Language 77, 2023; arXiv 2004.03844), §3 "top-layer dropping": the top layers are the
most task-specific, so the first k layers of the pre-trained model are kept and fine-tuned
directly on the task. Klein et al. (structural-pruning-via-nas.txt, §4.2, "LD") use it to explore
the LAYER space, fine-tuning one model per number of dropped layers to get a Pareto set.

Every model starts from the same pre-trained weights and the same new classifier, and is
fine-tuned with the same settings, so the rows differ only in depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from search_spaces.sub_network import SubNetwork
from trainers.autodistill.finetune import accuracy
from trainers.baselines.common import BaselineData, fine_tune, baseline_table, point
from trainers.supernet import SuperNetwork
from trainers.supernet.options import FinetuneOptions

METHOD = "layer_dropping"


@dataclass(frozen=True)
class LayerDroppingOptions:
    """`keep`: the layer counts to fine-tune (empty: every count from 1 to L); `finetune`: epochs,
    learning rate, batch size (its model / task / length fields are not used: the data is given)."""

    keep: tuple[int, ...] = ()
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)
    eval_batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if any(not isinstance(k, int) or k < 0 for k in self.keep):
            raise ValueError(f"keep must list layer counts >= 0, got {list(self.keep)}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")


def top_dropped(num_layers: int, num_heads: int, num_units: int, keep: int) -> SubNetwork:
    """The first `keep` layers whole, the rest removed."""
    rest = num_layers - keep
    return SubNetwork.first([num_heads] * keep + [0] * rest, [num_units] * keep + [0] * rest)


def layer_dropping(pretrained: SuperNetwork, data: BaselineData, options: LayerDroppingOptions = LayerDroppingOptions()) -> pd.DataFrame:
    """Fine-tune the pre-trained model with its top layers dropped, once per entry of `options.keep`;
    the table has one row per model (config: {"layers_kept": k})."""
    s = pretrained.shape
    keep = options.keep or tuple(range(1, s.num_layers + 1))
    if max(keep) > s.num_layers:
        raise ValueError(f"keep lists {max(keep)} layers; the model has {s.num_layers}")
    rows = []
    for k in keep:
        sub = top_dropped(s.num_layers, s.num_heads, s.intermediate_size, k)
        model = pretrained.extract_sub_network(sub)  # a copy: `pretrained` stays untouched
        fine_tune(model, data.train, options.finetune, options.seed)
        rows.append({**point(s, sub, accuracy(model, data.validation, options.eval_batch_size)), "config": {"layers_kept": k}})
    return baseline_table(METHOD, rows)
