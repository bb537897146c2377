"""The `standard_nas` trainer: fine-tune a sub-network from the pre-trained weights, report every epoch.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.1 and §4.1.2: in
standard NAS each sub-network is cut out of the pre-trained model and fine-tuned in isolation for
E epochs (the paper: 5); validation accuracy after every epoch is the fidelity MO-ASHA stops
trials on (`epoch` in each report). The sub-network is extracted to a dense model first, so
training a small one really costs less. Every report carries `epoch`, `accuracy`, `loss`,
`train_loss`, `params`, `params_non_embedding`, `flops`, the measured latency, `hardware` and
`precision` (option `precision`: training, evaluation and latency in fp32, bf16 or fp16).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch

from trainers.data import load_model_dir
from trainers.options import build_options
from trainers.contract import LATENCY_METRICS, PARAM_METRICS, Metrics, Report, TrialContext
from trainers.precision import MixedPrecision
from trainers.supernet.fit import cross_entropy_step, fit, param_groups
from trainers.supernet.measure import efficiency, evaluate
from trainers.supernet.model import SuperNetwork
from trainers.supernet.standalone import POOLINGS
from trainers.supernet.options import FinetuneOptions, MeasureOptions
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.checks import check_lengths, check_space_fits, pick_device, pruning_space


@dataclass(frozen=True)
class StandardNASOptions(FinetuneOptions, MeasureOptions):
    """Fine-tuning (`epochs` is E, the maximum fidelity) and scoring options."""

    #: what the classifier's pooler reads, as the weight_sharing trainer's option: "cls" or "mean"
    #: (sentence-transformers models such as all-MiniLM-L6-v2, whose [CLS] state below the last
    #: layer hardly varies between inputs).
    pooling: Literal["cls", "mean"] = "cls"

    def __post_init__(self) -> None:
        FinetuneOptions.__post_init__(self)
        MeasureOptions.__post_init__(self)
        if self.pooling not in POOLINGS:
            raise ValueError(f"option 'pooling' must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")


OPTIONS = StandardNASOptions
METRICS = ("epoch", "accuracy", "loss", "train_loss", *PARAM_METRICS, "flops", *LATENCY_METRICS)


@lru_cache(maxsize=2)
def pretrained(model: str, num_labels: int, seed: int, pooling: str = "cls") -> SuperNetwork:
    """The pre-trained model as a super-network, kept per process (extraction copies its weights)."""
    return SuperNetwork.from_pretrained(load_model_dir(model), num_labels=num_labels, seed=seed, pooling=pooling)


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(StandardNASOptions, ctx.options)
    space = pruning_space(ctx, "standard_nas")
    sub = space.architecture(ctx.arch)
    check_lengths(space, max_length=opts.max_length, latency_seq_len=opts.latency_seq_len)
    device = pick_device(opts.device)
    amp = MixedPrecision(opts.precision, device)
    train_split, num_labels = classification_split(
        SplitSpec(opts.task, opts.model, "train", opts.max_examples, opts.max_length, ctx.seed))
    valid_split, _ = classification_split(
        SplitSpec(opts.task, opts.model, "validation", opts.eval_examples, opts.max_length, ctx.seed))
    supernet = pretrained(opts.model, num_labels, ctx.seed, opts.pooling)
    check_space_fits(space, supernet, opts.model)
    model = supernet.extract_sub_network(sub).to(device)
    static = efficiency(model, opts)  # depends on the architecture only: measured once, before training
    torch.manual_seed(ctx.seed)
    last: dict[str, float | str] = {}

    def on_epoch(epoch: int, train_loss: float) -> None:
        last.clear()
        last.update({"epoch": float(epoch), **evaluate(model, valid_split, opts.eval_batch_size, opts.precision),
                     "train_loss": train_loss, **static})
        model.train()
        report(dict(last))

    model.train()
    fit(param_groups(model, opts), train_split.loader(opts.batch_size, shuffle=True, seed=ctx.seed), opts, device,
        cross_entropy_step(model, amp), on_epoch, amp=amp)
    return dict(last)
