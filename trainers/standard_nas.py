"""The `standard_nas` trainer: fine-tune a sub-network from the pre-trained weights, report every epoch.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 and §4.1.2: in
standard NAS each sub-network is cut out of the pre-trained model and fine-tuned in isolation for
E epochs (the paper: 5); validation accuracy after every epoch is the fidelity MO-ASHA stops
trials on (`epoch` in each report). The sub-network is extracted to a dense model first, so
training a small one really costs less. Every report carries `epoch`, `accuracy`, `loss`,
`train_loss`, `params`, `params_non_embedding`, `flops`, the measured latency and `hardware`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import torch
import torch.nn.functional as F

from trainers.data import load_model_dir
from trainers.options import build_options
from trainers.contract import LATENCY_METRICS, PARAM_METRICS, Metrics, Report, TrialContext
from trainers.supernet.fit import fit
from trainers.supernet.measure import efficiency, evaluate
from trainers.supernet.model import SuperNetwork
from trainers.supernet.options import FinetuneOptions, MeasureOptions
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.checks import check_lengths, check_space_fits, pick_device, pruning_space


@dataclass(frozen=True)
class StandardNASOptions(FinetuneOptions, MeasureOptions):
    """Fine-tuning (`epochs` is E, the maximum fidelity) and scoring options."""

    def __post_init__(self) -> None:
        FinetuneOptions.__post_init__(self)
        MeasureOptions.__post_init__(self)


OPTIONS = StandardNASOptions
METRICS = ("epoch", "accuracy", "loss", "train_loss", *PARAM_METRICS, "flops", *LATENCY_METRICS)


@lru_cache(maxsize=2)
def pretrained(model: str, num_labels: int, seed: int) -> SuperNetwork:
    """The pre-trained model as a super-network, kept per process (extraction copies its weights)."""
    return SuperNetwork.from_pretrained(load_model_dir(model), num_labels=num_labels, seed=seed)


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(StandardNASOptions, ctx.options)
    space = pruning_space(ctx, "standard_nas")
    sub = space.architecture(ctx.arch)
    check_lengths(space, max_length=opts.max_length, latency_seq_len=opts.latency_seq_len)
    device = pick_device(opts.device)
    train_split, num_labels = classification_split(
        SplitSpec(opts.task, opts.model, "train", opts.max_examples, opts.max_length, ctx.seed))
    valid_split, _ = classification_split(
        SplitSpec(opts.task, opts.model, "validation", opts.eval_examples, opts.max_length, ctx.seed))
    supernet = pretrained(opts.model, num_labels, ctx.seed)
    check_space_fits(space, supernet, opts.model)
    model = supernet.extract_sub_network(sub).to(device)
    static = efficiency(model, opts)  # depends on the architecture only: measured once, before training
    torch.manual_seed(ctx.seed)
    last: dict[str, float | str] = {}

    def step(batch: Mapping[str, torch.Tensor], progress: float) -> dict[str, float]:
        loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        return {"loss": float(loss.detach())}

    def on_epoch(epoch: int, train_loss: float) -> None:
        last.clear()
        last.update({"epoch": float(epoch), **evaluate(model, valid_split, opts.eval_batch_size),
                     "train_loss": train_loss, **static})
        model.train()
        report(dict(last))

    model.train()
    fit(model.parameters(), train_split.loader(opts.batch_size, shuffle=True, seed=ctx.seed), opts, device, step, on_epoch)
    return dict(last)
