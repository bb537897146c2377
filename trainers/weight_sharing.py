"""The `weight_sharing` trainer: score a sub-network on the shared weights of a trained super-network.

Klein et al., "Structural Pruning of Pre-Trained Language Models via NAS", §3.2.2: after the
super-network stage (`trainers/supernet/train.py`, run once before the trials by `lmnas run`), a
sub-network costs one pass over the validation data — no training. The super-network is loaded
once per worker process and kept (a worker runs many trials); each trial selects its sub-network,
evaluates, and measures the extracted model. Reports (once; there is no fidelity to stop early on):
`accuracy`, `loss`, `params`, `params_non_embedding`, `flops`, `latency_ms`, `latency_p90_ms`,
`latency_cv`, and the text metrics `hardware`, `latency_clock` and `precision` (option `precision`:
the super-network trains, and its sub-networks are evaluated and timed, in fp32, bf16 or fp16). Its
hooks (`trainers/supernet/hooks.py`) train the super-network before the trials and export a trial's
sub-network as a standalone model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from trainers.options import build_options
from trainers.precision import check_device
from trainers.contract import (LATENCY_METRICS, PARAM_METRICS, FinishedTrial, Metrics, Prepared, Report, StageContext,
                               TrialContext)
from trainers.supernet.cache import SupernetConfig, load_supernet
from trainers.supernet.hooks import export_sub_network, prepare_supernet
from trainers.supernet.checks import check_lengths, pick_device, pruning_space
from trainers.supernet.measure import efficiency, evaluate
from trainers.supernet.model import SuperNetwork
from trainers.supernet.options import MeasureOptions
from trainers.supernet.splits import SplitSpec, classification_split
from trainers.supernet.train import ensure_supernet


@dataclass(frozen=True)
class WeightSharingOptions(SupernetConfig, MeasureOptions):
    """The super-network's training config (which checkpoint to use) and how to score sub-networks."""

    def __post_init__(self) -> None:
        SupernetConfig.__post_init__(self)
        MeasureOptions.__post_init__(self)


OPTIONS = WeightSharingOptions
METRICS = ("accuracy", "loss", *PARAM_METRICS, "flops", *LATENCY_METRICS)

#: super-networks this process has loaded, by (checkpoint directory, device).
_LOADED: dict[tuple[str, str], SuperNetwork] = {}


def supernet_for(directory: Path, device: torch.device) -> SuperNetwork:
    """The super-network stored in `directory`, loaded on the first call of this process only."""
    key = (str(directory), str(device))
    if key not in _LOADED:
        _LOADED[key] = load_supernet(directory, device)
    return _LOADED[key]


def train(ctx: TrialContext, report: Report) -> Metrics:
    opts = build_options(WeightSharingOptions, ctx.options)
    space = pruning_space(ctx, "weight_sharing")
    sub = space.architecture(ctx.arch)  # an illegal sub-network fails here, before anything loads
    check_lengths(space, max_length=opts.max_length, latency_seq_len=opts.latency_seq_len)
    device = pick_device(opts.device)
    check_device(opts.precision, device)
    # `lmnas run` trains the super-network before the trials; this finds it (or trains it when run alone).
    directory = ensure_supernet(SupernetConfig.of(opts), space, ctx.seed)
    supernet = supernet_for(directory, device)
    split, _ = classification_split(
        SplitSpec(opts.task, opts.model, "validation", opts.eval_examples, opts.max_length, ctx.seed))
    supernet.set_sub_network(sub)
    try:
        scores = evaluate(supernet, split, opts.eval_batch_size, opts.precision)
        compact = supernet.extract_sub_network(sub)
    finally:
        supernet.reset_super_network()
    measured = efficiency(compact, opts)
    analytic = space.metrics(ctx.arch)
    assert all(measured[k] == v for k, v in analytic.items()), f"analytic {analytic} != measured {measured}"
    metrics = {**scores, **measured}
    report(metrics)
    return metrics


def supernet_config(options: Mapping[str, Any]) -> SupernetConfig:
    return SupernetConfig.of(build_options(WeightSharingOptions, options))


def prepare(ctx: StageContext) -> Prepared:
    """Before the trials: fine-tune the super-network (or find it in the cache)."""
    return prepare_supernet(ctx, supernet_config(ctx.options), "weight_sharing")


def export(ctx: StageContext, trial: FinishedTrial, out: Path) -> dict[str, Any]:
    """The trial's sub-network as a standalone model in `out`."""
    return export_sub_network(ctx, trial, out, supernet_config(ctx.options), "weight_sharing")


def remeasure(ctx: StageContext, trial: FinishedTrial) -> dict[str, Any]:
    """The trial's latency timed again (`lmnas remeasure`), on a host no other trial is using."""
    from trainers.supernet.hooks import trained_supernet

    opts = build_options(WeightSharingOptions, ctx.options)
    space, checkpoint = trained_supernet(ctx, SupernetConfig.of(opts), "weight_sharing")
    sub = space.architecture(space.normalise(trial.config))
    compact = supernet_for(checkpoint, pick_device(opts.device)).extract_sub_network(sub)
    measured = efficiency(compact, opts)
    return {k: measured[k] for k in LATENCY_METRICS}


def calibrate(ctx: StageContext, trial: FinishedTrial) -> dict[str, Any]:
    """The trial's sub-network fine-tuned on its own (`lmnas calibrate`): the value its proxy predicts."""
    from trainers.supernet.calibrate import train_standalone

    opts = build_options(WeightSharingOptions, ctx.options)
    return train_standalone(ctx, trial, SupernetConfig.of(opts), opts, "weight_sharing")
